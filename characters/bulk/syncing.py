"""Sync all of a team: what a sync will read per key, the start (every live character queued
as one job), and the task body (one `get` per character through its bound key, on the pooled
engine of jobs/pool.py; a teammate's save meanwhile wins)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django_tasks import task

from convai.client import ConvaiClient
from convai.types import CharacterDetails
from jobs import running
from jobs import services as jobs
from jobs.models import Job, JobItem
from jobs.pool import Fetched, job_client, patiently, run_pooled
from keys.models import ApiKey
from keys.services import ApiKeyUnusable
from teams.models import Membership, Team

from .. import services
from ..models import Character
from ..selectors import with_key_state
from .items import Discard, failed, quota_of, store

# This job kind's name (registered in characters/job_kinds.py).
SYNC_ALL = "sync_all"


@dataclass(frozen=True)
class SyncKey:
    """One key a sync reads through: how many characters, and its account's quota left."""

    api_key: ApiKey | None
    characters: int
    usable: bool
    quota_remaining: int | None = None
    quota_checked_at: datetime | None = None


def sync_plan(team: Team) -> list[SyncKey]:
    """What a sync of every character will read, per bound key (one `get` per character)."""
    counts: dict[Any, int] = {}
    usable: dict[Any, bool] = {}
    columns = ("bound_key_id", "key_usable")  # key_usable: with_key_state's annotation
    live = with_key_state(Character.objects.filter(team=team, deleted_at__isnull=True))
    for key_id, key_usable in live.order_by().values_list(*columns):
        counts[key_id] = counts.get(key_id, 0) + 1
        usable[key_id] = bool(key_usable) and key_id is not None
    keys = ApiKey.objects.in_bulk([k for k in counts if k is not None])
    rows = []
    for key_id, number in counts.items():
        api_key = keys.get(key_id)
        remaining, checked_at = quota_of(api_key) if api_key is not None else (None, None)
        rows.append(SyncKey(api_key, number, usable[key_id], remaining, checked_at))
    rows.sort(key=lambda row: (not row.usable, row.api_key.label if row.api_key else ""))
    return rows


def start_sync_all(*, actor: Membership) -> Job:
    """Queue a sync of every live character of the team from Convai."""
    services.authorize(actor, "character.sync")
    characters = list(
        Character.objects.filter(team=actor.team, deleted_at__isnull=True)
        .order_by("name", "pk")
        .values_list("pk", "name", "convai_id")
    )
    if not characters:
        raise services.CharacterError("This team has no characters to sync yet.")
    return jobs.start_job(
        actor=actor,
        kind=SYNC_ALL,
        scope=jobs.sync_scope(actor.team_id),
        items=[jobs.NewItem(name, convai_id, pk) for pk, name, convai_id in characters],
    )


def _sync_body(run: running.JobRun) -> None:
    job, actor = run.job, run.actor
    services.authorize(actor, "character.sync")
    characters = {
        character.pk: character
        for character in with_key_state(Character.objects.filter(team_id=job.team_id))
    }
    client_of = _Clients(actor)
    seen_versions: dict[int, int] = {}

    def work() -> Iterator[tuple[JobItem, Callable[[], CharacterDetails]]]:
        for item in list(run.pending()):
            character = characters.get(item.local_id or 0)
            if character is None or character.is_deleted:
                run.record_item(item, JobItem.State.SKIPPED, "Deleted here since the job began.")
                continue
            client = client_of(character)
            if isinstance(client, str):
                services.refuse(
                    "character.sync",
                    actor,
                    services.NoUsableKey(client),
                    "no usable key",
                    character=character,
                    call=services.ConvaiCall(api_key=character.bound_key),
                    job=job.pk,
                )
                run.record_item(item, JobItem.State.SKIPPED, client)
                continue
            seen_versions[character.pk] = character.version
            yield item, partial(patiently, partial(client.get_character, character.convai_id))

    def handle(item: JobItem, fetched: Fetched) -> None:
        character = characters[item.local_id or 0]
        call = services.ConvaiCall(api_key=character.bound_key, started=fetched.started)
        if fetched.error is not None:
            with transaction.atomic():
                message = failed(
                    "character.sync",
                    actor,
                    fetched.error,
                    call,
                    character=character,
                    item=item,
                    job=job,
                )
                run.record_item(item, JobItem.State.FAILED, message)
            return
        remote: CharacterDetails = fetched.value
        try:
            with transaction.atomic():
                _sync_one(run, item, character, remote, call, seen_versions[character.pk])
        except Discard:
            pass

    run_pooled(run, work(), handle)


class _Clients:
    """The bound keys' clients, each opened once, or why there is none (an item message)."""

    def __init__(self, actor: Membership) -> None:
        self.actor = actor
        self.clients: dict[Any, ConvaiClient | str] = {}

    def __call__(self, character: Character) -> ConvaiClient | str:
        if not getattr(character, "key_usable", False) or character.bound_key is None:
            return services.NoUsableKey.default_message
        key_id = character.bound_key_id
        if key_id not in self.clients:
            try:
                self.clients[key_id] = job_client(character.bound_key, self.actor)
            except ApiKeyUnusable as error:
                self.clients[key_id] = error.message
        return self.clients[key_id]


def _sync_one(
    run: running.JobRun,
    item: JobItem,
    character: Character,
    remote: CharacterDetails,
    call: services.ConvaiCall,
    seen_version: int,
) -> None:
    """Take Convai's version of one character as "Sync from Convai" does, unless a teammate
    saved it while the job read it, and store the item's result with it."""
    synced = services.apply_remote_state(
        actor=run.actor,
        character=character,
        remote=remote,
        call=call,
        expected_version=seen_version,
        note=f"job #{run.job.pk}",
        extra={"job": run.job.pk},
    )
    if synced.outcome == services.SyncResult.DELETED:
        store(run, item, JobItem.State.SKIPPED, "Deleted here while the job ran.")
        return
    if synced.outcome == services.SyncResult.SAVED_MEANWHILE:
        store(
            run,
            item,
            JobItem.State.SKIPPED,
            "Saved here while the job read it from Convai; sync it again to compare.",
        )
        return
    if synced.outcome == services.SyncResult.IN_STEP:
        message = "No changes."
    elif synced.field_changes:
        message = "Updated: " + ", ".join(change.label for change in synced.field_changes) + "."
    else:
        message = "Updated: other Convai fields."
    store(run, item, JobItem.State.DONE, message, local_id=character.pk)


@task()
def sync_all(job_id: int) -> str:
    """Sync the characters a job lists from Convai (one `get` each)."""
    return running.run_job(job_id, _sync_body, task=sync_all)
