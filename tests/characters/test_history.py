"""A character's history: revisions newest first with their diffs, any two compared, "Restore
this version" as an ordinary guarded update, the character's audit events on its page, and
rebinding that proposes keys of the same Convai account first. Against the live sandbox over
HTTP, through the services and the pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import Outcome
from characters import errors, history, selectors, services
from characters.models import Character, Revision
from sandbox.models import Listing, SandboxCharacter
from teams.models import Membership, Role
from tests.characters.support import events, remote
from tests.support.characters import BACKSTORY, Key

pytestmark = pytest.mark.django_db(transaction=True)

Create = Callable[..., services.Saved]
HTMX = {"HTTP_HX_REQUEST": "true"}
SECOND = "Raymond Reddington is a criminal mastermind.\nHe works with the FBI now."


@pytest.fixture
def character(create: Create) -> Character:
    return create(language_codes=["en-US"]).character


def update(actor: Membership, character: Character, **changes: Any) -> services.Saved:
    character.refresh_from_db()
    return services.update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=character.version,
        fields={**character.editable(), **changes},
    )


def url(name: str, character: Character, *args: Any) -> str:
    return reverse(f"characters:{name}", args=[character.team.slug, character.pk, *args])


def edited_twice(editor: Membership, character: Character) -> Character:
    update(editor, character, name="Red", backstory=SECOND)
    update(editor, character, actions=["Wave", "Sit", "Run"])
    character.refresh_from_db()
    return character


# --- history ---------------------------------------------------------------------------------


def test_history_is_newest_first_with_a_diff_against_the_one_before(
    character: Character, editor: Membership
) -> None:
    edited_twice(editor, character)

    page = history.history_page(character)

    assert [e.revision.number for e in page.entries] == [3, 2, 1]
    assert [e.revision.reason for e in page.entries] == ["updated", "updated", "created"]
    newest, middle, first = page.entries
    assert newest.changed_labels == ["Actions"]
    assert newest.rows[0]["old"] == "Wave, Sit" and newest.rows[0]["new"] == "Wave, Sit, Run"
    assert middle.changed_labels == ["Name", "Backstory"]
    backstory = middle.rows[1]
    assert {"kind": "del", "text": "He surrenders to the FBI."} in backstory["lines"]
    assert {"kind": "add", "text": "He works with the FBI now."} in backstory["lines"]
    assert first.first and first.rows == []


def test_unknown_snapshot_fields_are_compared_as_json(
    character: Character, editor: Membership
) -> None:
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(listing=Listing.PUBLIC)
    services.take_remote_version(actor=editor, character_id=character.pk)

    (synced, _) = history.history_page(character).entries
    assert synced.revision.reason == Revision.Reason.SYNCED
    (row,) = synced.rows
    assert (row["field"], row["unknown"], row["new"]) == ("listing", True, "public")


def test_the_detail_page_shows_the_history_with_its_diffs(
    client: Client, character: Character, editor: Membership
) -> None:
    edited_twice(editor, character)
    client.force_login(editor.user)

    html = client.get(url("character-detail", character)).content.decode()

    assert (
        html.index('id="version-3"') < html.index('id="version-2"') < html.index('id="version-1"')
    )
    assert "Changed since version 1: Name, Backstory" in html
    assert "He works with the FBI now." in html and "diff-add" in html
    assert "Restore this version" in html
    assert url("character-restore", character, 1) in html
    assert url("character-history", character) in html


def test_history_pages_cost_the_same_queries_however_long(
    client: Client, character: Character, editor: Membership
) -> None:
    client.force_login(editor.user)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    detail, full = url("character-detail", character), url("character-history", character)
    client.get(detail)  # the session's first save is not the page's
    few = (queries(detail), queries(full))
    fields = character.editable()
    Revision.objects.bulk_create(
        Revision(
            character=character,
            number=n,
            reason=Revision.Reason.UPDATED,
            fields={**fields, "name": f"Name {n}"},
            snapshot=character.snapshot,
            created_by=editor.user,
        )
        for n in range(2, 60)
    )
    assert (queries(detail), queries(full)) == few
    assert queries(full + "?page=3") == few[1]
    html = client.get(full + "?page=3").content.decode()
    assert 'id="version-19"' in html and 'id="version-1"' in html
    assert "Page 3 of 3" in html


def test_history_pages_in_twenties_and_htmx_gets_only_the_entries(
    client: Client, character: Character, editor: Membership
) -> None:
    Revision.objects.bulk_create(
        Revision(character=character, number=n, reason="updated", fields=character.editable())
        for n in range(2, 26)
    )
    client.force_login(editor.user)
    first = client.get(url("character-history", character)).content.decode()
    assert 'id="version-25"' in first and 'id="version-6"' in first
    assert 'id="version-5"' not in first
    partial = client.get(url("character-history", character) + "?page=2", **HTMX)
    html = partial.content.decode()
    assert "<html" not in html and 'id="history-entries"' in html
    assert 'id="version-5"' in html and 'id="version-1"' in html


# --- compare ----------------------------------------------------------------------------------


def test_any_two_versions_can_be_compared(
    client: Client, character: Character, editor: Membership
) -> None:
    edited_twice(editor, character)

    comparison = history.compare(character, 3, 1)
    assert comparison is not None
    assert (comparison.older.number, comparison.newer.number) == (1, 3)
    assert [row["label"] for row in comparison.rows] == ["Name", "Backstory", "Actions"]

    client.force_login(editor.user)
    page = client.get(url("character-compare", character), {"a": "1", "b": "3"})
    html = page.content.decode()
    assert "Version 1 → version 3" in html and "3 fields differ" in html
    assert "Restore version 1" in html
    partial = client.get(url("character-compare", character), {"a": "2", "b": "3"}, **HTMX)
    assert "<html" not in partial.content.decode()
    assert "1 field differs" in partial.content.decode()
    missing = client.get(url("character-compare", character), {"a": "1", "b": "99"})
    assert "Choose two versions this character has." in missing.content.decode()


# --- restore ----------------------------------------------------------------------------------


def test_restore_is_a_guarded_update_with_a_revision_and_an_event(
    character: Character, editor: Membership
) -> None:
    edited_twice(editor, character)

    saved = services.restore_revision(
        actor=editor, character_id=character.pk, number=1, expected_version=3
    )

    assert [c.field for c in saved.changes] == ["name", "backstory", "actions"]
    stored = remote(character)
    assert (stored.character_name, stored.backstory, list(stored.actions)) == (
        "Raymond",
        BACKSTORY,
        ["Wave", "Sit"],
    )
    latest = character.revisions.first()
    assert latest is not None
    assert (latest.number, latest.reason, latest.note) == (4, "restored", "version 1")
    assert latest.fields["name"] == "Raymond"
    (event,) = events("character.restore")
    assert event.outcome == Outcome.SUCCESS
    assert event.details["restored_from"] == 1
    assert event.details["changes"]["name"] == ["Red", "Raymond"]


def test_restore_stops_on_drift_and_on_a_conflict(character: Character, editor: Membership) -> None:
    edited_twice(editor, character)
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(
        backstory="Playground edit."
    )
    with pytest.raises(errors.Drift):
        services.restore_revision(
            actor=editor, character_id=character.pk, number=1, expected_version=3
        )
    with pytest.raises(errors.Conflict):
        services.restore_revision(
            actor=editor, character_id=character.pk, number=1, expected_version=2
        )
    assert remote(character).character_name == "Red"
    assert [e.details["reason"] for e in events("character.restore")] == ["drift", "conflict"]

    services.restore_revision(
        actor=editor, character_id=character.pk, number=1, expected_version=3, overwrite_drift=True
    )
    assert remote(character).backstory == BACKSTORY


def test_a_viewer_may_not_restore(
    character: Character, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(Role.VIEWER)
    with pytest.raises(Exception) as caught:
        services.restore_revision(
            actor=viewer, character_id=character.pk, number=1, expected_version=1
        )
    assert caught.type.__name__ == "NotAllowed"
    assert [e.outcome for e in events("character.restore")] == [Outcome.DENIED]


def test_the_restore_dialog_shows_what_will_change_then_restores(
    client: Client, character: Character, editor: Membership
) -> None:
    edited_twice(editor, character)
    client.force_login(editor.user)
    restore = url("character-restore", character, 1)

    dialog = client.get(restore, **HTMX).content.decode()
    assert "<html" not in dialog
    assert "Restore version 1 of “Red”?" in dialog
    assert "He surrenders to the FBI." in dialog and "Wave, Sit, Run" in dialog
    assert 'name="version" value="3"' in dialog

    answer = client.post(restore, {"version": "3"}, **HTMX)
    assert answer.status_code == 204
    assert answer["HX-Redirect"] == url("character-detail", character)
    page = client.get(url("character-detail", character)).content.decode()
    assert "Restored version 1 of “Raymond”" in page
    assert remote(character).character_name == "Raymond"


def test_the_restore_page_shows_drift_then_restores_anyway(
    client: Client, character: Character, editor: Membership
) -> None:
    edited_twice(editor, character)
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(voice_type="FEMALE")
    client.force_login(editor.user)
    restore = url("character-restore", character, 1)

    html = client.post(restore, {"version": "3"}).content.decode()
    assert "Changed in Convai since it was last saved here." in html
    assert 'name="overwrite_drift" value="1"' in html and "Restore anyway" in html
    assert remote(character).character_name == "Red"

    done = client.post(restore, {"version": "3", "overwrite_drift": "1"})
    assert done.status_code == 302
    stored = remote(character)
    assert (stored.character_name, stored.voice_type) == ("Raymond", "MALE")


def test_the_restore_page_after_a_teammates_save_asks_again(
    client: Client, character: Character, editor: Membership
) -> None:
    edited_twice(editor, character)
    client.force_login(editor.user)
    restore = url("character-restore", character, 1)
    update(editor, character, name="Raymond R.")  # a teammate, after the dialog opened

    html = client.post(restore, {"version": "3"}).content.decode()
    assert "saved this character meanwhile" in html
    assert 'name="version" value="4"' in html
    assert remote(character).character_name == "Raymond R."
    client.post(restore, {"version": "4"})
    assert remote(character).character_name == "Raymond"


def test_restore_is_not_offered_to_a_viewer(
    client: Client, character: Character, editor: Membership, make_member: Callable[..., Membership]
) -> None:
    edited_twice(editor, character)
    viewer = make_member(Role.VIEWER)
    client.force_login(viewer.user)
    html = client.get(url("character-detail", character)).content.decode()
    assert "Changed since version 1" in html
    assert "Restore this version" not in html
    assert client.post(url("character-restore", character, 1), {"version": "3"}).status_code == 403
    assert remote(character).character_name == "Red"


# --- audit events on the page -----------------------------------------------------------------


def test_the_page_lists_the_characters_audit_events(
    client: Client, character: Character, editor: Membership, make_member: Callable[..., Membership]
) -> None:
    edited_twice(editor, character)
    rows = history.audit_events(character)
    assert [r.event.action for r in rows] == [
        "character.update",
        "character.update",
        "character.create",
    ]
    client.force_login(editor.user)
    html = client.get(url("character-detail", character)).content.decode()
    assert "Activity" in html and ">Edit</td>" in html and ">Create</td>" in html
    assert "Open in the audit log" not in html  # an Editor does not review the audit log

    admin = make_member(Role.ADMIN)
    client.force_login(admin.user)
    html = client.get(url("character-detail", character)).content.decode()
    log = reverse("audit:log", args=[character.team.slug])
    assert f"{log}?target_type=character&amp;target={character.convai_id}" in html


# --- rebinding proposes the same account first --------------------------------------------------


def test_rebinding_proposes_keys_of_the_same_account_first(
    client: Client,
    create: Create,
    make_member: Callable[..., Membership],
    add_key: Callable[..., Key],
) -> None:
    owner = make_member(Role.EDITOR)
    owner_key = add_key(owner, "Owner key", account="studio")
    character = create(actor=owner, key=owner_key).character
    other = make_member(Role.EDITOR)
    elsewhere = add_key(other, "Another account", account="elsewhere")
    same = add_key(other, "Zed same account", account="studio")

    candidates = selectors.rebind_candidates(character.team_id, owner_key.api_key)
    ids = [k.pk for k in candidates if k.pk in {same.pk, elsewhere.pk, owner_key.pk}]
    assert set(ids[:2]) == {owner_key.pk, same.pk} and ids[2] == elsewhere.pk

    admin = make_member(Role.ADMIN)
    client.force_login(admin.user)
    html = client.get(url("character-rebind", character)).content.decode()
    assert html.index("Zed same account") < html.index("Another account")
    assert "same Convai account" in html.split("Zed same account", 1)[1].split("</option>")[0]
    assert "same Convai account" not in html.split("Another account", 1)[1].split("</option>")[0]
