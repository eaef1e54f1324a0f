"""Creates, clones and deletes are written down before Convai is called (PendingOperation),
keyed by the form's token, and reconciled when their request dies (issue 17 §2). Against the
live sandbox over HTTP; the killed-process versions are in test_killed_requests.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import Outcome
from characters import errors, importing, reconciliation, services
from characters.models import Character, PendingOperation
from convai.client import ConvaiClient
from keys.services import revoke_api_key
from sandbox.models import SandboxCharacter
from sandbox.services import clear_faults, set_fault
from teams.models import Membership, Role
from tests.characters.support import events, expect_failure, remote
from tests.factories import MembershipFactory
from tests.support.characters import BACKSTORY, Key, record_requests

Create = Callable[..., services.Saved]


def _unfinished_create(
    editor: Membership, editor_key: Key, name: str, token: str = "t"
) -> PendingOperation:
    """A create the editor's request left pending (its outcome unknown)."""
    return PendingOperation.objects.create(
        team=editor.team,
        kind="create",
        token=token,
        actor=editor.user,
        api_key=editor_key.api_key,
        name=name,
    )


def _unfinished_delete(editor: Membership, character: Character, token: str) -> PendingOperation:
    """A delete the editor's request left pending, through the character's key."""
    return PendingOperation.objects.create(
        team=editor.team,
        kind="delete",
        token=token,
        actor=editor.user,
        api_key=character.bound_key,
        character=character,
        name=character.name,
    )


def url(name: str, member: Membership, *args: Any) -> str:
    return reverse(f"characters:{name}", args=[member.team.slug, *args])


def creates_sent(sent: list[tuple[str, dict[str, Any]]]) -> int:
    return [path for path, _ in sent].count("/character/create")


@pytest.fixture
def overdue(settings: Any) -> None:
    """Every pending operation is due for reconciliation and its request over."""
    settings.CHARACTER_RECONCILE_AFTER = 0
    settings.CONVAI_REQUEST_SECONDS = 0


# --- the intent comes first ----------------------------------------------------------------------


def test_the_intent_is_committed_before_convai_is_called_and_finished_after(
    create: Create, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    real_create = ConvaiClient.create_character

    def look_first(self: ConvaiClient, *args: Any, **kwargs: Any) -> str:
        seen.extend(PendingOperation.objects.values_list("kind", "state", "fields"))
        return real_create(self, *args, **kwargs)

    monkeypatch.setattr(ConvaiClient, "create_character", look_first)
    saved = create(token="form-1")

    assert len(seen) == 1
    kind, state, fields = seen[0]
    assert (kind, state, fields["name"], fields["backstory"]) == (
        "create",
        "pending",
        "Raymond",
        BACKSTORY,
    )
    operation = PendingOperation.objects.get()
    assert (operation.state, operation.result, operation.token) == (
        "done",
        saved.character,
        "form-1",
    )
    assert operation.finished_at is not None
    assert editor_key.raw not in json.dumps(operation.fields)


def test_the_same_token_after_success_never_creates_twice(
    create: Create, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = create(token="form-1")
    sent = record_requests(monkeypatch)
    with pytest.raises(errors.OperationDone) as caught:
        create(token="form-1")
    assert caught.value.character == first.character
    assert creates_sent(sent) == 0
    assert Character.objects.count() == 1 and SandboxCharacter.objects.count() == 1


def test_a_refused_create_can_be_sent_again_with_the_same_form(create: Create) -> None:
    with pytest.raises(errors.ConvaiFailed):
        create(token="form-1", name="R" * 500)  # Convai refuses a name this long
    operation = PendingOperation.objects.get()
    assert operation.state == "failed" and operation.message

    saved = create(token="form-1", name="Raymond")
    operation.refresh_from_db()
    assert (operation.state, operation.result, operation.name) == (
        "done",
        saved.character,
        "Raymond",
    )


def test_a_timed_out_create_stays_pending_is_not_resent_and_reconciliation_adopts_it(
    create: Create,
    editor: Membership,
    editor_key: Key,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CONVAI_READ_TIMEOUT = 0.2
    set_fault(key_label=editor_key.sandbox_label, latency_ms=500)
    expect_failure(lambda: create(token="form-1", name="Slowpoke"))
    clear_faults(key_label=editor_key.sandbox_label)
    settings.CONVAI_READ_TIMEOUT = 5
    operation = PendingOperation.objects.get()
    assert operation.state == "pending"

    sent = record_requests(monkeypatch)
    with pytest.raises(errors.OperationPending) as caught:
        create(token="form-1", name="Slowpoke")
    assert "was not sent again" in caught.value.message
    assert creates_sent(sent) == 0

    # Not yet due: a reconciliation pass leaves it alone.
    assert "none" in reconciliation.reconcile_pending_operations()
    settings.CHARACTER_RECONCILE_AFTER = 0
    summary = reconciliation.reconcile_pending_operations()
    assert "1 adopted" in summary
    character = Character.objects.get()
    assert character.convai_id == SandboxCharacter.objects.get().character_id
    assert (character.name, character.created_by, character.bound_key_id) == (
        "Slowpoke",
        editor.user,
        editor_key.pk,
    )
    revision = character.revisions.get()
    assert "recovered" in revision.note and revision.created_by == editor.user
    (success,) = events("character.create", outcome=Outcome.SUCCESS)
    assert success.actor is None and success.actor_label == "system (reconciliation)"
    assert success.details["recovered"] is True
    assert success.details["for"] == editor.user.display_name
    operation.refresh_from_db()
    assert (operation.state, operation.result) == ("done", character)
    with pytest.raises(errors.OperationDone):
        create(token="form-1", name="Slowpoke")
    assert creates_sent(sent) == 0


def test_a_create_convai_never_made_is_marked_failed_only_once_its_request_is_over(
    editor: Membership, editor_key: Key, settings: Any
) -> None:
    operation = _unfinished_create(editor, editor_key, "Never made")
    settings.CHARACTER_RECONCILE_AFTER = 0
    settings.CONVAI_REQUEST_SECONDS = 3600  # its request could still be running
    assert "1 unknown" in reconciliation.reconcile_pending_operations()
    operation.refresh_from_db()
    assert operation.state == "pending"

    settings.CONVAI_REQUEST_SECONDS = 0
    assert "1 failed" in reconciliation.reconcile_pending_operations()
    operation.refresh_from_db()
    assert operation.state == "failed" and "was not created" in operation.message
    assert not Character.objects.exists()


def test_a_character_adopted_through_check_convai_finishes_its_operation(
    editor: Membership, editor_key: Key, make_client: Callable[..., ConvaiClient], overdue: None
) -> None:
    operation = _unfinished_create(editor, editor_key, "Adopted")
    make_client(editor_key.raw).create_character("Adopted", "MALE", "Made.", [])
    adopted = importing.adopt_from_convai(actor=editor, api_key_id=editor_key.pk, name="Adopted")
    assert "1 done" in reconciliation.reconcile_pending_operations()
    operation.refresh_from_db()
    assert (operation.state, operation.result) == ("done", adopted.character)
    assert Character.objects.count() == 1


def test_an_older_namesake_is_not_adopted(
    editor: Membership, editor_key: Key, make_client: Callable[..., ConvaiClient], overdue: None
) -> None:
    """Only a character created at or after the operation started is its result."""
    make_client(editor_key.raw).create_character("Twin", "MALE", "Older.", [])
    SandboxCharacter.objects.update(created_at=timezone.now() - timedelta(hours=1))
    _unfinished_create(editor, editor_key, "Twin")
    assert "1 failed" in reconciliation.reconcile_pending_operations()
    assert not Character.objects.exists()


# --- delete --------------------------------------------------------------------------------------


def test_a_delete_convai_did_not_do_is_marked_failed_and_the_character_kept(
    create: Create, editor: Membership, overdue: None
) -> None:
    character = create().character
    operation = _unfinished_delete(editor, character, "t")
    assert "1 failed" in reconciliation.reconcile_pending_operations()
    operation.refresh_from_db()
    assert operation.state == "failed" and "still has the character" in operation.message
    character.refresh_from_db()
    assert character.deleted_at is None
    assert remote(character).character_name == "Raymond"


def test_the_same_delete_form_sent_twice_deletes_once(
    create: Create, editor: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    character = create().character
    services.delete_character(
        actor=editor, character_id=character.pk, confirm_name="Raymond", token="del-1"
    )
    sent = record_requests(monkeypatch)
    with pytest.raises(errors.CharacterDeleted):
        services.delete_character(
            actor=editor, character_id=character.pk, confirm_name="Raymond", token="del-1"
        )
    assert sent == []
    assert PendingOperation.objects.get(kind="delete").state == "done"


def test_a_delete_stopped_by_drift_can_be_confirmed_with_the_same_form(
    create: Create, editor: Membership
) -> None:
    character = create().character
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(backstory="Other")
    with pytest.raises(errors.Drift):
        services.delete_character(
            actor=editor, character_id=character.pk, confirm_name="Raymond", token="del-1"
        )
    assert PendingOperation.objects.get(kind="delete").state == "failed"
    services.delete_character(
        actor=editor,
        character_id=character.pk,
        confirm_name="Raymond",
        overwrite_drift=True,
        token="del-1",
    )
    assert PendingOperation.objects.get(kind="delete").state == "done"
    character.refresh_from_db()
    assert character.is_deleted


# --- pages ---------------------------------------------------------------------------------------


def _token(html: str) -> str:
    match = re.search(r'name="token" value="([0-9a-f]{32})"', html)
    assert match, "the form carries no token"
    return match.group(1)


@pytest.mark.django_db(transaction=True)
def test_the_create_form_sent_twice_creates_once_and_shows_the_first(
    client: Client, editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.force_login(editor.user)
    token = _token(client.get(url("character-create", editor)).content.decode())
    assert token != _token(client.get(url("character-create", editor)).content.decode())
    data = {
        "name": "Ada",
        "voice_type": "MALE",
        "backstory": "Line one.",
        "actions": "Wave",
        "api_key": str(editor_key.pk),
        "token": token,
    }
    sent = record_requests(monkeypatch)
    first = client.post(url("character-create", editor), data)
    second = client.post(url("character-create", editor), data, follow=True)
    character = Character.objects.get()
    assert first.status_code == 302
    assert second.redirect_chain[-1][0] == url("character-detail", editor, character.pk)
    assert "nothing was sent to Convai again" in second.content.decode()
    assert creates_sent(sent) == 1


@pytest.mark.django_db(transaction=True)
def test_a_pending_create_sent_again_keeps_the_input_and_says_so(
    client: Client, editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unfinished_create(editor, editor_key, "Ada", token="a" * 32)
    client.force_login(editor.user)
    sent = record_requests(monkeypatch)
    response = client.post(
        url("character-create", editor),
        {
            "name": "Ada",
            "voice_type": "MALE",
            "backstory": "My words.",
            "api_key": str(editor_key.pk),
            "token": "a" * 32,
        },
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "was not sent again" in html and "My words." in html
    assert creates_sent(sent) == 0


@pytest.mark.django_db(transaction=True)
def test_the_list_shows_an_unknown_outcome_and_check_now_adopts_it(
    client: Client,
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
    make_client: Callable[..., ConvaiClient],
    settings: Any,
) -> None:
    settings.CONVAI_REQUEST_SECONDS = 0
    operation = _unfinished_create(editor, editor_key, "Lost Lucy")
    make_client(editor_key.raw).create_character("Lost Lucy", "MALE", "Made.", [])

    viewer = make_member(Role.VIEWER)
    client.force_login(viewer.user)
    html = client.get(url("character-list", viewer)).content.decode()
    assert "Outcome unknown: check Convai." in html and "Lost Lucy" in html
    check = url("operation-check", viewer, operation.pk)
    assert check not in html  # a Viewer may not create, so may not check a create
    client.post(check)
    operation.refresh_from_db()
    assert operation.state == "pending"

    client.force_login(editor.user)
    html = client.get(url("character-list", editor)).content.decode()
    assert check in html
    response = client.post(check)
    character = Character.objects.get(name="Lost Lucy")
    assert response["Location"] == url("character-detail", editor, character.pk)
    operation.refresh_from_db()
    assert (operation.state, operation.result) == ("done", character)
    assert "Outcome unknown" not in client.get(url("character-list", editor)).content.decode()


def test_finished_operations_are_forgotten_after_a_month(editor: Membership) -> None:
    old = timezone.now() - timedelta(days=reconciliation.OPERATION_KEEP_DAYS + 1)
    for token, state, finished in [
        ("old-done", "done", old),
        ("old-failed", "failed", old),
        ("recent", "done", timezone.now()),
        ("stuck", "pending", None),
    ]:
        PendingOperation.objects.create(
            team=editor.team,
            kind="create",
            token=token,
            state=state,
            finished_at=finished,
            created_at=old,
            name=token,
        )
    reconciliation.reconcile_pending_operations()
    assert set(PendingOperation.objects.values_list("token", flat=True)) == {"recent", "stuck"}


# --- an operation whose key can no longer be used ------------------------------------------------


def test_a_create_whose_key_was_revoked_is_settled_through_a_key_of_the_same_account(
    make_member: Callable[..., Membership],
    add_key: Callable[..., Key],
    make_client: Callable[..., ConvaiClient],
    overdue: None,
) -> None:
    """Convai answers the same for every key of an account: once the operation's own key is
    revoked, a teammate's key of that account finds what the create made (before, it stayed
    "Outcome unknown" for good). The character is bound to the key that can use it."""
    editor = make_member(Role.EDITOR)
    editor_key = add_key(editor, "Editor key", account="studio")
    colleague_key = add_key(make_member(Role.EDITOR), "Colleague key", account="studio")
    add_key(make_member(Role.EDITOR), "Other account key", account="elsewhere")
    operation = _unfinished_create(editor, editor_key, "Orphan")
    make_client(editor_key.raw).create_character("Orphan", "MALE", "Made.", [])
    revoke_api_key(actor=editor.user, api_key_id=editor_key.pk)

    assert "1 adopted" in reconciliation.reconcile_pending_operations()

    character = Character.objects.get(name="Orphan")
    assert (character.bound_key_id, character.created_by) == (colleague_key.pk, editor.user)
    operation.refresh_from_db()
    assert (operation.state, operation.result) == ("done", character)
    (success,) = events("character.create", outcome=Outcome.SUCCESS)
    assert success.details["recovered"] is True
    assert success.details["key_used"] == f"Colleague key (…{colleague_key.raw[-4:]})"


def test_with_no_key_of_its_account_the_list_says_so_and_dismiss_gives_up(
    client: Client,
    editor: Membership,
    editor_key: Key,
    make_member: Callable[..., Membership],
    overdue: None,
) -> None:
    operation = _unfinished_create(editor, editor_key, "Stranded")
    revoke_api_key(actor=editor.user, api_key_id=editor_key.pk)
    assert "1 unknown" in reconciliation.reconcile_pending_operations()

    viewer = make_member(Role.VIEWER)
    client.force_login(viewer.user)
    dismiss = url("operation-dismiss", viewer, operation.pk)
    html = client.get(url("character-list", viewer)).content.decode()
    assert "Outcome unknown: no key can ask Convai." in html
    assert dismiss not in html  # a Viewer may not create, so may not give up on a create
    client.post(dismiss)
    operation.refresh_from_db()
    assert operation.state == "pending"

    client.force_login(editor.user)
    html = client.get(url("character-list", editor)).content.decode()
    assert dismiss in html and url("operation-check", editor, operation.pk) not in html
    page = client.post(dismiss, follow=True).content.decode()

    assert "is dismissed" in page and "Stranded" not in page.split("is dismissed")[1]
    operation.refresh_from_db()
    assert operation.state == "failed" and operation.message.startswith("Dismissed by")
    (event,) = events("character.create", outcome=Outcome.FAILURE)
    assert (event.actor, event.details["reason"]) == (editor.user, "dismissed")
    assert event.target_label == "Stranded"
    assert not Character.objects.exists()


def test_an_operation_convai_can_still_be_asked_about_is_not_dismissed(
    client: Client, editor: Membership, editor_key: Key, overdue: None
) -> None:
    operation = _unfinished_create(editor, editor_key, "Checkable")
    client.force_login(editor.user)
    html = client.get(url("character-list", editor)).content.decode()
    assert url("operation-dismiss", editor, operation.pk) not in html

    page = client.post(url("operation-dismiss", editor, operation.pk), follow=True)

    assert "Convai can still be asked" in page.content.decode()
    operation.refresh_from_db()
    assert operation.state == "pending"
    (refusal,) = events("character.create", outcome=Outcome.FAILURE)
    assert refusal.details["reason"] == "operation can still be checked"


def test_a_stuck_delete_is_dismissed_and_the_character_kept(
    client: Client, create: Create, editor: Membership, editor_key: Key, overdue: None
) -> None:
    character = create(name="Kept").character
    operation = _unfinished_delete(editor, character, "d")
    revoke_api_key(actor=editor.user, api_key_id=editor_key.pk)
    client.force_login(editor.user)
    html = client.get(url("character-list", editor)).content.decode()
    assert "Outcome unknown: no key can ask Convai." in html
    assert "found by “Import”" not in html  # a delete made nothing to import

    page = client.post(url("operation-dismiss", editor, operation.pk), follow=True)

    assert "The delete of “Kept” is dismissed." in page.content.decode()
    assert "Import" not in page.content.decode().split("is dismissed.")[1].split("</")[0]
    operation.refresh_from_db()
    character.refresh_from_db()
    assert operation.state == "failed" and character.deleted_at is None
    (event,) = events("character.delete", outcome=Outcome.FAILURE)
    assert event.details["reason"] == "dismissed" and event.target_id == character.convai_id


def test_dismissing_an_operation_of_another_team_or_none_answers_404(
    client: Client, editor: Membership, overdue: None
) -> None:
    """Stuck (no key), overdue, and another team's: the same 404 as an ID that does not exist."""
    stranger = MembershipFactory.create(role=Role.OWNER)
    theirs = PendingOperation.objects.create(
        team=stranger.team, kind="create", token="t", actor=stranger.user, name="Theirs"
    )
    client.force_login(editor.user)
    assert client.post(url("operation-dismiss", editor, theirs.pk)).status_code == 404
    assert client.post(url("operation-dismiss", editor, 999999)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == "pending"
