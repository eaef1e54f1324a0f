"""Names people read (team, key label, person, username) refuse the invisible characters that
reorder how text is shown (security finding 7): U+202A to U+202E, U+2066 to U+2069, U+200E/F."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from convai_admin.validators import reject_bidi_controls
from keys.forms import ApiKeyForm
from teams.forms import InvitationSignupForm, TeamForm
from tests.factories import UserFactory

CONTROLS = [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]
CONTROLS += ["\u200e", "\u200f"]
MESSAGE = "invisible characters that change the direction text is shown in"


@pytest.mark.parametrize("char", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_the_validator_refuses_every_direction_control(char: str) -> None:
    with pytest.raises(ValidationError, match=MESSAGE):
        reject_bidi_controls(f"Studio{char}gpj.exe")


def test_ordinary_names_in_any_script_pass() -> None:
    for name in ("Northwind Studio", "Ōkami Games", "استوديو", "סטודיו", "工作室 2"):
        reject_bidi_controls(name)


@pytest.mark.django_db
def test_team_name() -> None:
    form = TeamForm(data={"name": "Northwind\u202eoidutS"})
    assert not form.is_valid()
    assert MESSAGE in str(form.errors["name"])
    assert TeamForm(data={"name": "Northwind Studio"}).is_valid()


@pytest.mark.django_db
def test_key_label() -> None:
    form = ApiKeyForm(data={"label": "prod\u2066key", "key": "a" * 32}, user=UserFactory())
    assert not form.is_valid()
    assert MESSAGE in str(form.errors["label"])


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["username", "first_name", "last_name"])
def test_person_names_at_sign_up(field: str) -> None:
    data = {
        "username": "sam",
        "first_name": "Sam",
        "last_name": "Rivera",
        "email": "",
        "password1": "quiet-lantern-orbit-77",
        "password2": "quiet-lantern-orbit-77",
    }
    assert InvitationSignupForm(data=data).is_valid()
    form = InvitationSignupForm(data={**data, field: "Sam\u200fRivera"})
    assert not form.is_valid()
    assert MESSAGE in str(form.errors[field])
