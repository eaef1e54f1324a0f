"""Form text that arrived as invalid UTF-8 is refused with a form error, not stored (or sent to
Convai) with "�" where the letters were. Django decodes form data with errors="replace", so
both encodings of a form end up as U+FFFD; one validator refuses it (ReadableTextMixin)."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from characters import forms as character_forms
from convai_admin.validators import ReadableTextMixin, reject_unreadable_text
from keys.forms import ApiKeyForm
from keys.models import ApiKey
from teams import forms as team_forms
from teams.models import Team
from tests.factories import UserFactory
from tests.support.forms import MULTIPART, UNREADABLE, multipart


@pytest.mark.parametrize("text", ["Ada", "Zoë", "أحمد", "名前", "🙂 Smile", "a\u00adb"])
def test_readable_text_passes(text: str) -> None:
    reject_unreadable_text(text)


def test_the_replacement_character_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        reject_unreadable_text("Bad\ufffd\ufffd")
    assert refused.value.code == "unreadable_text"


@pytest.mark.parametrize(
    "form_class",
    [
        ApiKeyForm,
        team_forms.TeamForm,
        team_forms.InvitationForm,
        team_forms.InvitationSignupForm,
        character_forms.CharacterForm,
        character_forms.CreateCharacterForm,
        character_forms.EditCharacterForm,
        character_forms.ImportFindForm,
        character_forms.ImportConfirmForm,
        character_forms.AdoptForm,
        character_forms.CloneForm,
    ],
)
def test_every_form_that_stores_names_or_sends_text_to_convai_refuses_it(
    form_class: type[forms.BaseForm],
) -> None:
    assert issubclass(form_class, ReadableTextMixin)


@pytest.mark.django_db
def test_the_mixin_puts_the_error_on_the_field_and_keeps_the_class_fields_clean() -> None:
    user = UserFactory.create()
    form = ApiKeyForm({"label": "Bad\ufffd", "key": "abcdefgh1234"}, user=user)
    assert not form.is_valid()
    assert UNREADABLE in form.errors["label"][0]
    assert reject_unreadable_text not in ApiKeyForm.base_fields["label"].validators
    assert ApiKeyForm({"label": "Good", "key": "abcdefgh1234"}, user=user).is_valid()


@pytest.mark.django_db
def test_a_key_label_in_invalid_utf8_is_a_form_error(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.post(
        reverse("keys:list"),
        b"label=Bad%FF%FE&key=abcdefgh1234",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert UNREADABLE in html
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_a_team_name_with_raw_invalid_bytes_in_multipart_is_a_form_error(
    client: Client,
) -> None:
    client.force_login(UserFactory.create())
    response = client.post(
        reverse("teams:team-create"), multipart(name=b"Studio \xff\xfe"), content_type=MULTIPART
    )
    assert response.status_code == 200
    assert UNREADABLE in response.content.decode()
    assert not Team.objects.exists()


@pytest.mark.django_db
def test_an_invitation_signup_name_in_invalid_utf8_is_a_form_error(settings: Any) -> None:
    form = team_forms.InvitationSignupForm(
        {
            "username": "sam",
            "first_name": "Sa\ufffdm",
            "last_name": "Lee",
            "password1": "a-long-enough-password",
            "password2": "a-long-enough-password",
        }
    )
    assert not form.is_valid()
    assert UNREADABLE in form.errors["first_name"][0]
