"""Sync all of a team: what a sync will read per key, the start (every live character queued
as one job), and the task body (one `get` per character through its bound key, on the pooled
engine of jobs/pool.py; a teammate's save meanwhile wins)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
from keys.services import ApiKeyUnusable
from teams.models import Membership

from .. import errors, operations, records
from ..models import Character
from ..selectors import with_key_state
from .items import Discard, failed, store

# This job kind's name (registered in characters/job_kinds.py).
SYNC_ALL = "sync_all"


def start_sync_all(*, actor: Membership) -> Job:
    """Queue a sync of every live character of the team from Convai."""
    operations.authorize(actor=actor, action="character.sync")
    characters = list(
        Character.objects.filter(team=actor.team, deleted_at__isnull=True)
        .order_by("name", "pk")
        .values_list("pk", "name", "convai_id")
    )
    if not characters:
        raise errors.CharacterError("This team has no characters to sync yet.")
    return jobs.start_job(
        actor=actor,
        kind=SYNC_ALL,
        scope=jobs.sync_scope(actor.team_id),
        items=[jobs.NewItem(name, convai_id, pk) for pk, name, convai_id in characters],
    )


def _sync_body(run: running.JobRun) -> None:
    job, actor = run.job, run.actor
    operations.authorize(actor=actor, action="character.sync")
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
                operations.refuse(
                    action="character.sync",
                    actor=actor,
                    error=errors.NoUsableKey(client),
                    reason="no usable key",
                    character=character,
                    call=operations.ConvaiCall(api_key=character.bound_key),
                    job=job.pk,
                )
                run.record_item(item, JobItem.State.SKIPPED, client)
                continue
            seen_versions[character.pk] = character.version
            yield item, partial(patiently, partial(client.get_character, character.convai_id))

    def handle(item: JobItem, fetched: Fetched) -> None:
        character = characters[item.local_id or 0]
        call = operations.ConvaiCall(api_key=character.bound_key, started=fetched.started)
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
            return errors.NoUsableKey.default_message
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
    call: operations.ConvaiCall,
    seen_version: int,
) -> None:
    """Take Convai's version of one character as "Sync from Convai" does, unless a teammate
    saved it while the job read it, and store the item's result with it."""
    synced = records.apply_remote_state(
        actor=run.actor,
        character=character,
        remote=remote,
        call=call,
        expected_version=seen_version,
        note=f"job #{run.job.pk}",
        extra={"job": run.job.pk},
    )
    if synced.outcome == records.SyncResult.DELETED:
        store(run, item, JobItem.State.SKIPPED, "Deleted here while the job ran.")
        return
    if synced.outcome == records.SyncResult.SAVED_MEANWHILE:
        store(
            run,
            item,
            JobItem.State.SKIPPED,
            "Saved here while the job read it from Convai; sync it again to compare.",
        )
        return
    if synced.outcome == records.SyncResult.IN_STEP:
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
