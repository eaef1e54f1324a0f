"""Import all of a key and sync all of a team, as background jobs run by the real worker loop
against the live sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from characters.bulk import importing, syncing
from characters.models import Character, Revision
from convai.client import ConvaiClient
from convai.errors import ConvaiRateLimitError
from jobs import pool, running
from jobs.models import Job, JobItem
from sandbox.models import SandboxCharacter
from sandbox.services import set_fault
from teams.models import Membership, Role
from tests.factories import CharacterFactory, MembershipFactory, TeamFactory
from tests.jobs.support import fresh, run_worker, seed_remote
from tests.support.characters import Key, record_requests

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]


def statuses(preview: importing.ImportPreview) -> dict[str, str]:
    return {row.name: row.status for row in preview.rows}


def test_preview_sorts_the_keys_characters_into_new_here_changed_and_elsewhere(
    editor: Membership,
    add_key: Callable[..., Key],
    login: Callable[[Membership], Any],
) -> None:
    key = add_key(editor, "Studio", account="studio")
    remote = {c.character_name: c for c in seed_remote(key, 4)}
    # Two already here (one changed in Convai since), one in another team (of someone with a
    # key of the same Convai account), one new.
    importing.start_import_all(
        actor=editor,
        api_key_id=key.pk,
        convai_ids=[remote["Remote 001"].character_id, remote["Remote 002"].character_id],
    )
    run_worker()
    rival = TeamFactory(name="Rival Studio")
    other_team_member = MembershipFactory(team=rival, role=Role.EDITOR)
    other_key = add_key(other_team_member, "Rival", account="studio")
    importing.start_import_all(
        actor=other_team_member,
        api_key_id=other_key.pk,
        convai_ids=[remote["Remote 003"].character_id],
    )
    run_worker()
    SandboxCharacter.objects.filter(pk=remote["Remote 002"].pk).update(character_name="Renamed")

    preview = importing.preview_import(actor=editor, api_key_id=key.pk)

    assert statuses(preview) == {
        "Remote 001": "here",
        "Renamed": "changed",
        "Remote 003": "elsewhere",
        "Remote 004": "new",
    }
    changed = next(row for row in preview.rows if row.status == "changed")
    assert changed.changed_fields == ("Name",)
    assert [row.name for row in preview.rows if row.selectable] == ["Remote 004", "Remote 003"]
    page = login(editor).get(
        reverse("jobs:import-all", args=[editor.team.slug]),
        {"key": str(key.pk)},
        headers={"HX-Request": "true"},
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "In another team" in html and "Rival Studio" not in html
    # One field per exception, never one per character: a new one may be left out, one in
    # another team may be added.
    assert html.count('name="skip"') == 1 and html.count('name="convai_id"') == 1
    assert 'name="new" value="all"' in html and 'name="elsewhere" value="all"' in html
    # The key's remaining core-API quota (as last read) is shown before anything starts.
    assert "core-API call" in html and "this job makes 2" in html


def test_import_all_imports_the_chosen_characters_with_backstories(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Any]
) -> None:
    remote = seed_remote(editor_key, 5)
    client = login(editor)
    url = reverse("jobs:import-all", args=[editor.team.slug])
    chosen = [c.character_id for c in remote[:4]]
    response = client.post(url, {"key": str(editor_key.pk), "convai_id": chosen})
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:job-detail", args=[editor.team.slug, job.pk])
    assert job.state == Job.State.QUEUED and job.total == 4

    run_worker()

    job = fresh(job)
    assert (job.state, job.done, job.skipped, job.failed) == ("done", 4, 0, 0)
    imported = {c.convai_id: c for c in Character.objects.filter(team=editor.team)}
    assert set(imported) == set(chosen)
    for source in remote[:4]:
        character = imported[source.character_id]
        assert character.backstory == source.backstory
        assert character.bound_key_id == editor_key.pk
        assert character.revisions.get().reason == Revision.Reason.IMPORTED
    events = AuditEvent.objects.filter(action="character.import")
    assert events.count() == 4
    assert {e.origin for e in events} == {f"task import_all #{job.pk}"}
    assert AuditEvent.objects.filter(action="job.start", target_id=str(job.pk)).exists()
    finish = AuditEvent.objects.get(action="job.finish", target_id=str(job.pk))
    assert finish.details["done"] == 4 and finish.origin == f"task import_all #{job.pk}"
    page = client.get(reverse("jobs:job-detail", args=[editor.team.slug, job.pk]))
    html = page.content.decode()
    assert 'value="4"' in html and "100 %" in html and "hx-trigger" not in html


def test_import_all_of_5000_characters_sends_the_exceptions_not_one_field_each(
    editor: Membership,
    editor_key: Key,
    login: Callable[[Membership], Any],
    add_key: Callable[..., Key],
) -> None:
    """Issue 17 §4: 1,200 checkboxes answered 400 (TooManyFieldsSent) and started nothing."""
    remote = seed_remote(editor_key, 5000)
    # Two of them another team has too (a key of the same Convai account there).
    rival = MembershipFactory(team=TeamFactory(name="Rival Studio"), role=Role.EDITOR)
    rival_key = add_key(rival, "Rival", account=None)
    shared = [remote[10], remote[20]]
    for character in shared:
        CharacterFactory.create(
            team=rival.team,
            convai_id=character.character_id,
            bound_key=rival_key.api_key,
            created_by=rival.user,
        )
    client = login(editor)
    url = reverse("jobs:import-all", args=[editor.team.slug])
    page = client.get(url, {"key": str(editor_key.pk)})
    html = page.content.decode()
    assert page.status_code == 200 and html.count('name="skip"') == 4998
    assert "checked" not in html.split("<tbody>")[1]  # nothing is sent unless ticked

    # Untouched, the form sends three fields; two new ones left out, one shared one added.
    left_out = [remote[0].character_id, remote[1].character_id]
    response = client.post(
        url,
        {
            "key": str(editor_key.pk),
            "new": "all",
            "skip": left_out,
            "convai_id": [shared[0].character_id],
        },
    )
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.total == 4998 - 2 + 1
    queued = set(job.items.values_list("target_id", flat=True))
    assert shared[0].character_id in queued and shared[1].character_id not in queued
    assert not queued & set(left_out)


def test_import_all_may_take_every_character_another_team_has_too(
    editor: Membership, editor_key: Key, login: Callable[[Membership], Any]
) -> None:
    remote = seed_remote(editor_key, 3)
    rival = MembershipFactory(team=TeamFactory(name="Rival Studio"), role=Role.EDITOR)
    CharacterFactory.create(team=rival.team, convai_id=remote[0].character_id)
    url = reverse("jobs:import-all", args=[editor.team.slug])
    client = login(editor)
    # Only the characters another team has, every one of them: no new one.
    client.post(
        url,
        {
            "key": str(editor_key.pk),
            "new": "all",
            "elsewhere": "all",
            "skip": [remote[1].character_id, remote[2].character_id],
        },
    )
    job = Job.objects.get()
    assert list(job.items.values_list("target_id", flat=True)) == [remote[0].character_id]
    # Nothing chosen at all: told so, nothing started.
    Job.objects.all().delete()
    refused = client.post(url, {"key": str(editor_key.pk)}, follow=True)
    assert "Choose at least one character" in refused.content.decode()
    assert not Job.objects.exists()


def test_a_fault_in_the_middle_finishes_what_it_can_and_reports_the_rest(
    editor: Membership, editor_key: Key, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONVAI_JOB_CONCURRENCY = 1
    settings.CONVAI_JOB_READ_RETRIES = 1
    remote = seed_remote(editor_key, 8)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    # One character disappears from Convai before the job reads it (a 400 with Convai's
    # message); after three characters, Convai goes down (503s, retried, then given up).
    SandboxCharacter.objects.filter(pk=remote[1].pk).delete()
    real = running.JobRun.record_item
    recorded: list[str] = []

    def record_then_break(self: Any, item: JobItem, state: str, *args: Any, **kw: Any) -> bool:
        stored = real(self, item, state, *args, **kw)
        recorded.append(state)
        if len(recorded) == 3:
            set_fault(key_label=editor_key.sandbox_label, outage=True)
        return stored

    monkeypatch.setattr(running.JobRun, "record_item", record_then_break)

    run_worker()

    job = fresh(job)
    assert job.state == Job.State.DONE
    assert job.done + job.failed == 8 and job.skipped == 0
    assert 2 <= job.done <= 4
    items = {item.label: item for item in job.items.all()}
    gone = items["Remote 002"]
    assert gone.state == JobItem.State.FAILED and "No character with the ID" in gone.message
    down = [i for i in items.values() if i.state == "failed" and i is not gone]
    assert down and all("HTTP 503" in item.message for item in down)
    assert Character.objects.filter(team=editor.team).count() == job.done
    failures = AuditEvent.objects.filter(action="character.import", outcome="failure")
    assert failures.count() == job.failed
    assert all(event.details.get("convai_status") in (400, 503) for event in failures)


def test_reads_are_retried_on_429_and_then_reported(
    editor: Membership, editor_key: Key, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Convai keeps answering 429: each get is retried CONVAI_JOB_READ_RETRIES times (the
    Retry-After of 0 s honoured), then the item fails with Convai's words; nothing is stored."""
    settings.CONVAI_JOB_READ_RETRIES = 2
    remote = seed_remote(editor_key, 3)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    set_fault(key_label=editor_key.sandbox_label, rate_limit=True, retry_after=0)
    # Counted as they leave the client (the sandbox's own counters are off in these tests).
    sent: list[str] = []
    real_send = ConvaiClient._send

    def counting(self: ConvaiClient, method: str, path: str, body: Any) -> Any:
        sent.append(path)
        return real_send(self, method, path, body)

    monkeypatch.setattr(ConvaiClient, "_send", counting)
    run_worker()
    job = fresh(job)
    assert (job.state, job.done, job.failed) == ("done", 0, 3)
    assert sent.count("/character/get") == 3 * (1 + 2)
    assert all("rate limiting" in item.message for item in job.items.all())
    assert not Character.objects.filter(team=editor.team).exists()


def test_a_long_retry_after_is_waited_out_by_the_job(
    editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """A Retry-After longer than a page would wait (5 s): the job waits it out and carries
    on; one longer than CONVAI_JOB_MAX_RETRY_WAIT fails that item."""
    settings.CONVAI_JOB_CONCURRENCY = 1
    remote = seed_remote(editor_key, 2)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    real_get = ConvaiClient.get_character
    answers = iter([7.0, None, 600.0])

    def limited(self: Any, convai_id: str) -> Any:
        retry_after = next(answers, None)
        if retry_after is not None:
            raise ConvaiRateLimitError("Convai is rate limiting requests.", retry_after=retry_after)
        return real_get(self, convai_id)

    waits: list[float] = []
    monkeypatch.setattr(ConvaiClient, "get_character", limited)
    monkeypatch.setattr(pool, "wait_out", waits.append)
    run_worker()
    job = fresh(job)
    assert (job.done, job.failed) == (1, 1) and waits == [7.0]
    assert "rate limiting" in job.items.get(state="failed").message


def test_sync_all_stores_revisions_only_for_changed_characters(
    editor: Membership,
    create: Callable[..., Any],
    login: Callable[[Membership], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    same = create(name="Same").character
    renamed = create(name="Before").character
    gone = create(name="Gone").character
    edited_meanwhile = create(name="Busy").character
    SandboxCharacter.objects.filter(character_id=renamed.convai_id).update(
        character_name="After", backstory="A new backstory."
    )
    SandboxCharacter.objects.filter(character_id=edited_meanwhile.convai_id).update(
        character_name="Busy in Convai"
    )
    SandboxCharacter.objects.filter(character_id=gone.convai_id).delete()
    response = login(editor).post(reverse("jobs:sync-all", args=[editor.team.slug]))
    job = Job.objects.get()
    assert response.status_code == 302 and job.kind == syncing.SYNC_ALL and job.total == 4
    real_sync_one = syncing._sync_one

    def teammate_saves_first(run: Any, item: Any, character: Character, *args: Any) -> None:
        if character.pk == edited_meanwhile.pk:
            Character.objects.filter(pk=character.pk).update(version=F("version") + 1)
        real_sync_one(run, item, character, *args)

    monkeypatch.setattr(syncing, "_sync_one", teammate_saves_first)
    revisions_before = Revision.objects.count()

    run_worker()

    job = fresh(job)
    assert (job.state, job.done, job.skipped, job.failed) == ("done", 2, 1, 1)
    items = {item.local_id: item for item in job.items.all()}
    assert items[same.pk].message == "No changes."
    assert items[renamed.pk].message == "Updated: Name, Backstory."
    assert items[edited_meanwhile.pk].state == "skipped"
    assert "Saved here while the job read it" in items[edited_meanwhile.pk].message
    assert (
        items[gone.pk].state == "failed" and "no longer exists on Convai" in items[gone.pk].message
    )
    assert Revision.objects.count() == revisions_before + 1
    renamed.refresh_from_db()
    assert (renamed.name, renamed.backstory) == ("After", "A new backstory.")
    assert renamed.revisions.first().reason == Revision.Reason.SYNCED
    same_after = Character.objects.get(pk=same.pk)
    assert same_after.version == same.version and same_after.synced_at > same.synced_at
    assert Character.objects.get(pk=gone.pk).remote_missing_at is not None
    assert Character.objects.get(pk=edited_meanwhile.pk).name == "Busy"
    syncs = AuditEvent.objects.filter(action="character.sync")
    assert {e.origin for e in syncs} == {f"task sync_all #{job.pk}"}


def test_sync_all_reads_each_character_once_through_its_bound_key(
    editor: Membership, create: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    characters = [create(name=f"C{n}").character for n in range(5)]
    sent = record_requests(monkeypatch)
    syncing.start_sync_all(actor=editor)
    run_worker()
    gets = sorted(body["charID"] for path, body in sent if path == "/character/get")
    assert gets == sorted(c.convai_id for c in characters)
    assert all(path == "/character/get" for path, _ in sent)


def test_sync_all_skips_a_character_a_save_is_on_its_way_for(
    editor: Membership,
    create: Callable[..., Any],
    login: Callable[[Membership], Any],
) -> None:
    """What the job read may predate that save's write: it is not taken, the item says why."""
    busy = create(name="Busy").character
    SandboxCharacter.objects.filter(character_id=busy.convai_id).update(
        character_name="Busy in Convai"
    )
    Character.objects.filter(pk=busy.pk).update(
        saving_token="theirs", saving_since=timezone.now(), saving_by=editor.user
    )
    login(editor).post(reverse("jobs:sync-all", args=[editor.team.slug]))

    run_worker()

    job = fresh(Job.objects.get())
    assert (job.state, job.done, job.skipped) == ("done", 0, 1)
    assert "Saved here while the job read it" in job.items.get().message
    busy.refresh_from_db()
    assert (busy.name, busy.version, busy.saving_token) == ("Busy", 1, "theirs")
