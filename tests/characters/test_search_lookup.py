"""`search_contains` exists on the two fields whose trigram indexes answer it, nowhere else:
registering it on every CharField changed every app's fields behind their back."""

from __future__ import annotations

from django.db.models import CharField, TextField

from accounts.models import User
from characters.models import Character


def test_the_search_lookup_is_registered_on_the_indexed_fields_only() -> None:
    assert "search_contains" in Character._meta.get_field("name").get_lookups()
    assert "search_contains" in Character._meta.get_field("backstory").get_lookups()
    assert "search_contains" not in Character._meta.get_field("voice_type").get_lookups()
    assert "search_contains" not in User._meta.get_field("username").get_lookups()
    assert "search_contains" not in CharField.get_lookups()
    assert "search_contains" not in TextField.get_lookups()
