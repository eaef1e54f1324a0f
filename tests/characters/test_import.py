"""Getting a character from Convai (by ID or exact name) and importing it: only what the key's
account owns, once per team. Against the live sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from characters import errors, importing
from characters.models import Character, Revision
from convai.client import ConvaiClient
from sandbox.models import Listing, SandboxCharacter
from sandbox.services import create_sandbox_key, set_fault
from teams.models import Membership, Role
from tests.characters.support import events
from tests.factories import MembershipFactory, TeamFactory
from tests.support.characters import BACKSTORY, Key
from tests.support.secrets import assert_secret_absent, audit_text

MakeClient = Callable[..., ConvaiClient]


@pytest.fixture
def convai_id(editor_key: Key, make_client: MakeClient) -> str:
    """A character the editor's account made in Convai, not yet in the team."""
    return make_client(editor_key.raw).create_character("Dembe", "MALE", BACKSTORY, actions=["Nod"])


@pytest.fixture
def public_id(sandbox: str, make_client: MakeClient) -> str:
    """A public character of another Convai account (its key is not in this team)."""
    theirs = make_client(create_sandbox_key("elsewhere")).create_character(
        "Famous", "FEMALE", "Everyone can read me."
    )
    SandboxCharacter.objects.filter(character_id=theirs).update(listing=Listing.PUBLIC)
    return theirs


def test_find_by_id_shows_what_would_be_imported(
    editor: Membership, editor_key: Key, convai_id: str
) -> None:
    found = importing.find_remote(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)
    assert found.details.character_id == convai_id
    assert found.owned is True
    assert found.existing is None
    assert found.api_key.pk == editor_key.pk
    assert found.fields == {
        "name": "Dembe",
        "voice_type": "MALE",
        "backstory": BACKSTORY,
        "actions": ["Nod"],
        "language_codes": ["en-US"],
    }
    assert not Character.objects.exists()


def test_find_by_exact_name(editor: Membership, editor_key: Key, convai_id: str) -> None:
    found = importing.find_remote(actor=editor, api_key_id=editor_key.pk, name="Dembe")
    assert found.details.character_id == convai_id
    assert found.owned is True
    with pytest.raises(errors.ConvaiFailed):
        importing.find_remote(actor=editor, api_key_id=editor_key.pk, name="dembe")


def test_import_stores_the_record_its_first_revision_and_one_event(
    editor: Membership, editor_key: Key, convai_id: str
) -> None:
    saved = importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)

    character = Character.objects.get(pk=saved.character.pk)
    assert character.convai_id == convai_id
    assert character.editable()["backstory"] == BACKSTORY
    assert character.bound_key_id == editor_key.pk
    assert character.created_by_id == editor.user_id
    assert character.version == 1
    assert character.snapshot["character_id"] == convai_id
    (revision,) = character.revisions.all()
    assert (revision.number, revision.reason) == (1, Revision.Reason.IMPORTED)
    (event,) = events("character.import")
    assert (event.outcome, event.target_id, event.target_label) == (
        Outcome.SUCCESS,
        convai_id,
        "Dembe",
    )
    assert event.details["fields"]["name"] == "Dembe"
    assert_secret_absent(audit_text(), editor_key.raw)


def test_a_public_character_of_another_account_is_found_but_not_imported(
    editor: Membership, editor_key: Key, public_id: str
) -> None:
    found = importing.find_remote(actor=editor, api_key_id=editor_key.pk, convai_id=public_id)
    assert found.owned is False
    assert found.details.character_name == "Famous"

    with pytest.raises(errors.NotOwnedByKey) as caught:
        importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=public_id)

    assert "Famous" in caught.value.message
    assert "Editor key" in caught.value.message
    assert not Character.objects.exists()
    (event,) = events("character.import")
    assert event.outcome == Outcome.FAILURE
    assert (event.target_id, event.target_label) == (public_id, "Famous")
    assert event.details["reason"] == "not owned by this key"


def test_a_character_already_in_the_team_is_not_imported_twice(
    editor: Membership, editor_key: Key, convai_id: str
) -> None:
    first = importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)
    found = importing.find_remote(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)
    assert found.existing is not None and found.existing.pk == first.character.pk

    with pytest.raises(errors.AlreadyInTeam) as caught:
        importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)

    assert caught.value.character.pk == first.character.pk
    assert "Dembe" in caught.value.message
    assert Character.objects.count() == 1
    assert Revision.objects.count() == 1


def test_another_team_may_import_the_same_character(
    editor: Membership, editor_key: Key, convai_id: str
) -> None:
    importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)
    elsewhere = MembershipFactory(team=TeamFactory(), user=editor.user, role=Role.EDITOR)
    importing.import_character(actor=elsewhere, api_key_id=editor_key.pk, convai_id=convai_id)
    assert Character.objects.filter(convai_id=convai_id).count() == 2


def test_an_unknown_id_is_convais_refusal_recorded_as_a_failure(
    editor: Membership, editor_key: Key
) -> None:
    with pytest.raises(errors.ConvaiFailed):
        importing.find_remote(actor=editor, api_key_id=editor_key.pk, convai_id="no-such-id")
    (event,) = events("character.import")
    assert event.outcome == Outcome.FAILURE
    assert event.target_label == "no-such-id"
    assert event.details["convai_status"] == 400
    assert not Character.objects.exists()


# --- the confirm step, through the page -----------------------------------------------------------


CONFIRM_FAILURES = [
    "gone since the lookup",
    "not owned by the key",
    "teammate's key",
    "outage",
    "rate limit",
]


@pytest.mark.parametrize("what", CONFIRM_FAILURES)
def test_any_failure_at_the_confirm_step_is_a_message_with_the_input_kept(
    client: Client,
    editor: Membership,
    editor_key: Key,
    convai_id: str,
    add_key: Callable[..., Key],
    make_member: Callable[..., Membership],
    public_id: str,
    what: str,
) -> None:
    key_id = str(editor_key.pk)
    if what == "gone since the lookup":
        SandboxCharacter.objects.filter(character_id=convai_id).delete()
    elif what == "not owned by the key":
        convai_id = public_id
    elif what == "teammate's key":
        key_id = str(add_key(make_member(Role.EDITOR), "Teammate key").pk)
    elif what == "outage":
        set_fault(outage=True)
    else:
        set_fault(rate_limit=True, retry_after=0)
    client.force_login(editor.user)
    url = reverse("characters:character-import", args=[editor.team.slug])
    after = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    response = client.post(url, {"step": "import", "api_key": key_id, "convai_id": convai_id})

    assert response.status_code == 200
    form = response.context["form"]
    assert form.non_field_errors(), "the failure is named on the page"
    assert form["lookup"].value() == convai_id  # the input is kept for another try
    assert form["api_key"].value() == key_id
    assert not Character.objects.exists()
    recorded = AuditEvent.objects.filter(id__gt=after, action="character.import")
    assert [e.outcome for e in recorded] == [Outcome.FAILURE]
