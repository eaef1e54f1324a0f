"""Sandbox keys: each is its own remote user unless given an account, shown once, stored
only as a hash."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from sandbox.models import SandboxKey
from sandbox.services import authenticate, create_sandbox_key, revoke_sandbox_keys


def database_text() -> str:
    """Every value of every table of the database, as one string."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


@pytest.mark.django_db
def test_create_sandbox_key_returns_a_convai_shaped_key_and_stores_only_its_hash() -> None:
    key = create_sandbox_key("demo")
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    stored = SandboxKey.objects.get()
    assert stored.label == "demo"
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.django_db
def test_the_database_never_holds_a_raw_sandbox_key() -> None:
    keys = [create_sandbox_key(f"k{n}") for n in range(3)]
    text = database_text()
    assert "sandbox_sandboxkey" in connection.introspection.table_names()
    for key in keys:
        assert key not in text


@pytest.mark.django_db
def test_every_key_is_a_distinct_user() -> None:
    first, second = create_sandbox_key("same"), create_sandbox_key("same")
    assert first != second
    one, two = authenticate(first), authenticate(second)
    assert one is not None and two is not None
    assert one.account_id != two.account_id
    assert one.account.user_id != two.account.user_id


@pytest.mark.django_db
def test_authenticate_counts_requests_and_rejects_unknown_keys() -> None:
    key = create_sandbox_key("count")
    authenticate(key)
    found = authenticate(key)
    assert found is not None and found.request_count == 2
    assert SandboxKey.objects.get().request_count == 2
    assert authenticate("") is None
    assert authenticate(key.upper()) is None


@pytest.mark.django_db
def test_blank_label_is_refused() -> None:
    with pytest.raises(ValueError, match="label"):
        create_sandbox_key("  ")


@pytest.mark.django_db
def test_command_prints_the_key_alone_on_its_last_line() -> None:
    out = io.StringIO()
    call_command("sandbox_key", "create", "--label", "cli", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) >= 2
    key = lines[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert authenticate(key) is not None
    assert key not in database_text()


@pytest.mark.django_db
def test_command_list_shows_labels_but_no_keys() -> None:
    key = create_sandbox_key("listed")
    out = io.StringIO()
    call_command("sandbox_key", "list", stdout=out)
    assert "listed" in out.getvalue()
    assert key not in out.getvalue()


@pytest.mark.django_db
def test_command_refuses_a_blank_label() -> None:
    with pytest.raises(CommandError, match="label"):
        call_command("sandbox_key", "create", "--label", " ", stdout=io.StringIO())


@pytest.mark.django_db
def test_revoking_deletes_the_keys_with_that_label() -> None:
    gone, kept = create_sandbox_key("old"), create_sandbox_key("new")
    out = io.StringIO()
    call_command("sandbox_key", "revoke", "--label", "old", stdout=out)
    assert authenticate(gone) is None
    assert authenticate(kept) is not None
    assert revoke_sandbox_keys("nothing") == 0
