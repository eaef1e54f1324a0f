"""Two saves opened at the same version, released together: the version is a compare-and-set,
so exactly one reaches Convai and the other is a conflict (issue 17 §1). Two threads and a
barrier, against the live sandbox, on SQLite and PostgreSQL (the sandbox fixture is
transactional, so each thread's writes are committed and visible to the other)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from audit.models import Outcome
from characters import errors, reconciliation, services
from characters.models import Character
from convai.client import ConvaiClient, close_thread_session
from sandbox.models import SandboxCharacter
from teams.models import Membership, Role
from tests.characters.support import events, remote
from tests.support.characters import Key, record_requests
from tests.support.sandbox import hits

Create = Callable[..., services.Saved]
WAIT = 20  # seconds: a bound on each wait, never a delay


@pytest.fixture
def character(create: Create) -> Character:
    return create(language_codes=["en-US"]).character


@pytest.fixture
def teammate(make_member: Callable[..., Membership]) -> Membership:
    return make_member(Role.EDITOR)


@contextmanager
def thread_database() -> Iterator[Callable[[], None]]:
    """What a worker thread runs first and last. SQLite's in-memory test database is one
    connection shared with the live server (as pytest-django does for its threads); a second
    connection to it would answer "table is locked" at once instead of waiting. PostgreSQL:
    each thread has its own connection, closed at the end."""
    main = connections["default"]
    shared = main if main.vendor == "sqlite" and main.is_in_memory_db() else None
    if shared is not None:
        shared.inc_thread_sharing()

    def enter() -> None:
        if shared is not None:
            connections["default"] = shared

    try:
        yield enter
    finally:
        if shared is not None:
            shared.dec_thread_sharing()


def test_two_saves_of_the_same_version_released_together_one_wins(
    character: Character,
    editor: Membership,
    teammate: Membership,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both threads have read version 1 and the remote state (drift check) before either
    claims it: the barrier sits after each thread's get. The first to reach Convai's update
    then waits until the other thread is done, so without a compare-and-set both updates are
    sent; with it, the second never gets that far."""
    sent = record_requests(monkeypatch)
    barrier = threading.Barrier(2, timeout=WAIT)
    done = {name: threading.Event() for name in ("editor", "teammate")}
    first_update = threading.Lock()
    real_get = ConvaiClient.get_character
    real_update = ConvaiClient.update_character

    def get_then_meet(self: ConvaiClient, *args: Any, **kwargs: Any) -> Any:
        details = real_get(self, *args, **kwargs)
        if threading.current_thread().name in done and not getattr(local, "met", False):
            local.met = True
            barrier.wait()
        return details

    def update_after_the_other(self: ConvaiClient, *args: Any, **kwargs: Any) -> Any:
        if first_update.acquire(blocking=False):
            me = threading.current_thread().name
            other = next(name for name in done if name != me)
            assert done[other].wait(WAIT), "the other save never finished"
        return real_update(self, *args, **kwargs)

    local = threading.local()
    monkeypatch.setattr(ConvaiClient, "get_character", get_then_meet)
    monkeypatch.setattr(ConvaiClient, "update_character", update_after_the_other)
    outcomes: dict[str, Any] = {}
    yours = {"editor": "Raymond (editor)", "teammate": "Raymond (teammate)"}

    with thread_database() as enter:

        def save(actor: Membership) -> None:
            name = threading.current_thread().name
            enter()
            try:
                outcomes[name] = services.update_character(
                    actor=actor,
                    character_id=character.pk,
                    expected_version=1,
                    fields={**character.editable(), "name": yours[name]},
                )
            except Exception as error:  # the outcome under test
                outcomes[name] = error
            finally:
                done[name].set()
                close_thread_session()
                if connection.vendor != "sqlite":
                    connection.close()

        # The first thread reads before the second starts (on SQLite they share one
        # connection, so their reads must not interleave); then both wait at the barrier.
        first = threading.Thread(target=save, args=(editor,), name="editor")
        second = threading.Thread(target=save, args=(teammate,), name="teammate")
        first.start()
        assert _wait_for(lambda: barrier.n_waiting == 1), "the first save never read"
        second.start()
        for thread in (first, second):
            thread.join(WAIT * 2)
            assert not thread.is_alive()

    saved = [name for name, outcome in outcomes.items() if isinstance(outcome, services.Saved)]
    refused = [name for name, outcome in outcomes.items() if isinstance(outcome, errors.Conflict)]
    assert len(saved) == 1 and len(refused) == 1, outcomes
    (winner,) = saved
    (loser,) = refused
    assert [path for path, _ in sent].count("/character/update") == 1
    character.refresh_from_db()
    assert character.version == 2
    assert character.name == yours[winner]
    assert character.saving_token == "" and character.saving_since is None
    assert remote(character).character_name == yours[winner]
    revisions = list(character.revisions.order_by("number"))
    assert [r.number for r in revisions] == [1, 2]
    winner_user = (editor if winner == "editor" else teammate).user
    assert revisions[1].created_by == winner_user
    assert revisions[1].fields["name"] == yours[winner]
    updates = events("character.update")
    assert [e.outcome for e in updates if e.outcome == Outcome.SUCCESS] == [Outcome.SUCCESS]
    (refusal,) = [e for e in updates if e.outcome == Outcome.FAILURE]
    assert refusal.actor == (teammate if loser == "teammate" else editor).user
    assert refusal.details["reason"] in {"save in progress", "conflict"}
    # The loser was not told "saved", nor that Convai dropped anything.
    assert "Convai did not store" not in str(outcomes[loser])
    assert outcomes[winner].warnings == []


def _wait_for(condition: Callable[[], bool]) -> bool:
    """Poll for a state with a bounded deadline (no fixed sleep)."""
    deadline = threading.Event()
    timer = threading.Timer(WAIT, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            if condition():
                return True
            deadline.wait(0.01)
        return condition()
    finally:
        timer.cancel()


def test_a_save_while_another_is_in_flight_gets_the_conflict_panel_with_input_kept(
    character: Character,
    editor: Membership,
    teammate: Membership,
    login: Callable[[Membership], Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Character.objects.filter(pk=character.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=teammate.user
    )
    sent = record_requests(monkeypatch)
    client = login(editor)
    url = reverse("characters:character-edit", args=[editor.team.slug, character.pk])
    data = {
        "name": "My new name",
        "voice_type": character.voice_type,
        "backstory": "My backstory.",
        "actions": "Wave\nSit",
        "language_codes": ["en-US"],
        "version": "1",
    }
    response = client.post(url, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{escape(teammate.user.display_name)} is saving this character right now" in page
    assert "My new name" in page and "My backstory." in page
    assert [path for path, _ in sent].count("/character/update") == 0
    character.refresh_from_db()
    assert (character.version, character.name) == (1, "Raymond")
    assert character.saving_token == "theirs"


def test_an_interrupted_save_does_not_lock_the_character_for_good(
    character: Character,
    editor: Membership,
    teammate: Membership,
    settings: Any,
) -> None:
    """A claim older than CHARACTER_SAVE_CLAIM_SECONDS was left by a server that died: the
    next save takes it over; reconciliation releases it too."""
    old = timezone.now() - timedelta(seconds=settings.CHARACTER_SAVE_CLAIM_SECONDS + 1)
    Character.objects.filter(pk=character.pk).update(
        saving_token="dead", saving_since=old, saving_by=teammate.user
    )
    saved = services.update_character(
        actor=editor,
        character_id=character.pk,
        expected_version=1,
        fields={**character.editable(), "name": "Red"},
    )
    assert saved.character.version == 2
    character.refresh_from_db()
    assert (character.name, character.saving_token) == ("Red", "")

    Character.objects.filter(pk=character.pk).update(saving_token="dead", saving_since=old)
    summary = reconciliation.reconcile_pending_operations()
    assert "interrupted saves released: 1" in summary
    character.refresh_from_db()
    assert character.saving_token == "" and character.saving_since is None


def test_a_failed_save_gives_its_claim_back(character: Character, editor: Membership) -> None:
    with pytest.raises(errors.ConvaiFailed):
        # Convai refuses a name this long (the form would have stopped it first).
        services.update_character(
            actor=editor,
            character_id=character.pk,
            expected_version=1,
            fields={**character.editable(), "name": "R" * 500},
        )
    character.refresh_from_db()
    assert character.saving_token == "" and character.version == 1


def test_the_detail_page_says_a_save_is_in_progress_or_was_interrupted(
    character: Character,
    editor: Membership,
    teammate: Membership,
    login: Callable[[Membership], Client],
    settings: Any,
) -> None:
    client = login(editor)
    url = reverse("characters:character-detail", args=[editor.team.slug, character.pk])
    assert "is saving this character" not in client.get(url).content.decode()

    Character.objects.filter(pk=character.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=teammate.user
    )
    page = client.get(url).content.decode()
    assert f"{escape(teammate.user.display_name)} is saving this character" in page

    old = timezone.now() - timedelta(seconds=settings.CHARACTER_SAVE_CLAIM_SECONDS + 1)
    Character.objects.filter(pk=character.pk).update(saving_since=old)
    page = client.get(url).content.decode()
    assert f"A save by {escape(teammate.user.display_name)} was interrupted" in page
    assert "Saving works again." in page


# --- the other writers respect a save's claim ----------------------------------------------------


def _changed_in_convai(character: Character, name: str) -> None:
    SandboxCharacter.objects.filter(character_id=character.convai_id).update(character_name=name)


def test_a_sync_while_a_save_is_on_its_way_takes_nothing(
    character: Character, editor: Membership, teammate: Membership
) -> None:
    """The save's write may reach Convai after the sync's read: taking what was read would
    undo that save here. The sync is refused, once, and nothing is written."""
    _changed_in_convai(character, "Changed in Convai")
    Character.objects.filter(pk=character.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=teammate.user
    )

    with pytest.raises(errors.CharacterError, match="saved this character while it was read"):
        services.take_remote_version(actor=editor, character_id=character.pk)

    character.refresh_from_db()
    assert (character.name, character.version, character.revisions.count()) == ("Raymond", 1, 1)
    assert character.saving_token == "theirs"
    (refusal,) = events("character.sync")
    assert refusal.outcome == Outcome.FAILURE and refusal.details["reason"] == "saved meanwhile"


def test_a_save_between_the_syncs_read_and_its_write_is_kept(
    character: Character,
    editor: Membership,
    teammate: Membership,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sync read Convai, then a teammate saved: what the sync read predates that save, so
    it is not taken (before, it overwrote the teammate's name here with the older one)."""
    _changed_in_convai(character, "Changed in Convai")
    real_get = ConvaiClient.get_character
    reads: list[str] = []

    def teammate_saves_after_the_read(self: ConvaiClient, convai_id: str) -> Any:
        details = real_get(self, convai_id)
        reads.append(convai_id)
        if len(reads) == 1:
            services.update_character(
                actor=teammate,
                character_id=character.pk,
                expected_version=1,
                fields={**character.editable(), "name": "Teammate's name"},
                overwrite_drift=True,
            )
        return details

    monkeypatch.setattr(ConvaiClient, "get_character", teammate_saves_after_the_read)

    with pytest.raises(errors.CharacterError, match="saved this character while it was read"):
        services.take_remote_version(actor=editor, character_id=character.pk)

    character.refresh_from_db()
    assert (character.name, character.version) == ("Teammate's name", 2)
    assert remote(character).character_name == "Teammate's name"
    monkeypatch.undo()
    synced = services.take_remote_version(actor=editor, character_id=character.pk)
    assert synced.changes == [] and synced.character.version == 2


def test_retrying_languages_while_a_save_is_on_its_way_sends_nothing(
    character: Character, editor: Membership, editor_key: Key, teammate: Membership
) -> None:
    Character.objects.filter(pk=character.pk).update(
        language_codes=[], pending_language_codes=["fr-FR"]
    )
    Character.objects.filter(pk=character.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=teammate.user
    )
    before = hits(editor_key.raw)

    with pytest.raises(errors.SaveInProgress):
        services.retry_language_codes(actor=editor, character_id=character.pk)

    assert hits(editor_key.raw) == before
    assert remote(character).language_codes == ["en-US"]
    character.refresh_from_db()
    assert (character.pending_language_codes, character.version) == (["fr-FR"], 1)


def test_any_save_that_sends_languages_clears_the_creates_pending_list(
    character: Character, editor: Membership
) -> None:
    """Otherwise "Retry languages" would still offer the create's list over the languages a
    member chose since."""
    Character.objects.filter(pk=character.pk).update(
        language_codes=[], pending_language_codes=["fr-FR"]
    )
    character.refresh_from_db()
    services.update_character(
        actor=editor,
        character_id=character.pk,
        expected_version=1,
        fields={**character.editable(), "language_codes": ["de-DE"]},
    )
    character.refresh_from_db()
    assert (character.language_codes, character.pending_language_codes) == (["de-DE"], None)
    assert remote(character).language_codes == ["de-DE"]


def test_pending_languages_convai_already_has_are_cleared_without_a_call(
    character: Character, editor: Membership, editor_key: Key
) -> None:
    Character.objects.filter(pk=character.pk).update(pending_language_codes=["en-US"])
    before = hits(editor_key.raw)
    saved = services.retry_language_codes(actor=editor, character_id=character.pk)
    assert hits(editor_key.raw) == before
    character.refresh_from_db()
    assert character.pending_language_codes is None and character.version == 1
    assert saved.character.pending_language_codes is None


def test_sync_from_convai_during_a_save_says_so_on_the_page(
    character: Character, editor: Membership, teammate: Membership, client: Client
) -> None:
    """The refusal reaches the member through the page, as a message, not an error page."""
    _changed_in_convai(character, "Changed in Convai")
    Character.objects.filter(pk=character.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=teammate.user
    )
    client.force_login(editor.user)
    url = reverse("characters:character-sync", args=[character.team.slug, character.pk])

    page = client.post(url, follow=True)

    assert page.status_code == 200
    assert "saved this character while it was read from Convai" in page.content.decode()
    character.refresh_from_db()
    assert (character.name, character.version) == ("Raymond", 1)
