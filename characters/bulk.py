"""Bulk character operations that run in the background: import all of a key, sync all of a
team. The preview and the start run in a request; the task bodies run in the worker
(`manage.py db_worker`) through jobs.services.run_job, which owns the job's state.

How a task body works: the worker's thread keeps the database; a pool of
CONVAI_JOB_CONCURRENCY threads only makes Convai reads (one `get` per character). Each pool
thread talks through its own keep-alive session (the client's sessions are per thread). Reads
are retried by the client (429 with a short Retry-After, 5xx and connection errors, with
backoff, CONVAI_JOB_READ_RETRIES times) and here once more for a longer Retry-After, up to
CONVAI_JOB_MAX_RETRY_WAIT seconds; nothing is written to Convai. At most twice the
concurrency is in flight, so a cancel stops within a second and memory stays flat.

Every character's result is stored with the job item in one transaction: the character, its
revision, its audit event (origin "task <kind> #<id>") and the item's result commit together,
so a worker killed in the middle leaves no half-recorded character, and a resumed job does not
redo an item that is done.

The same characters in two jobs: a sync writes a character only if its version is still the one
it had when the sync read it (a teammate's save meanwhile wins, the item says "skipped"); an
import that finds the character already in the team (another job, a teammate) skips it — the
database's one-live-character-per-team constraint decides. Jobs themselves are one at a time per
key (import) and per team (sync): see jobs/services.py.

Everything a character's record, revision and event need goes through characters.services'
public functions: a job's import stores a character as an import does (store_new_character),
its sync takes Convai's state as "Sync from Convai" does (apply_remote_state, with the version
guard), and its failures are recorded as a page's are (record_convai_failure).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

import requests
from django.conf import settings
from django.db import connection, transaction
from django_tasks import task
from django_tasks.base import Task

from audit.models import Outcome
from convai.client import MAX_RETRY_WAIT_SECONDS, ConvaiClient, thread_session
from convai.errors import ConvaiError, ConvaiRateLimitError
from convai.types import CharacterDetails
from convai_admin.display import natural_key
from jobs import services as jobs
from jobs.models import Job, JobItem
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for
from teams.models import Membership

from . import errors, operations, records
from .models import Character, Revision
from .remote import differences, fields_from_remote, fields_from_snapshot
from .selectors import quota_of, with_key_state

logger = logging.getLogger("convai_admin.jobs")
SWITCH_INTERVAL = 0.0005  # seconds; see run_pooled


# --- Job clients and the pool -------------------------------------------------------------------


def job_client(api_key: ApiKey, actor: Membership) -> ConvaiClient:
    """A client for a job: the key opened once (in the worker's thread), reads retried more
    patiently than a page would. Its session is whichever thread calls it: each pool thread
    has its own."""
    client = client_for(api_key, actor=actor.user)
    client.read_retries = settings.CONVAI_JOB_READ_RETRIES
    return client


def wait_out(seconds: float) -> None:
    time.sleep(seconds)


def get_patiently(client: ConvaiClient, convai_id: str) -> CharacterDetails:
    """`get`, waiting out a 429's Retry-After longer than the client would inside a page (up to
    CONVAI_JOB_MAX_RETRY_WAIT seconds in all)."""
    waited = 0.0
    while True:
        try:
            return client.get_character(convai_id)
        except ConvaiRateLimitError as error:
            pause = error.retry_after
            if (
                pause is None
                or pause <= MAX_RETRY_WAIT_SECONDS  # short ones: the client's retries had them
                or waited + pause > settings.CONVAI_JOB_MAX_RETRY_WAIT
            ):
                raise
            wait_out(pause)
            waited += pause


@dataclass
class Fetched:
    """What a pool thread brings back for one item."""

    value: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.perf_counter)


def run_pooled(
    run: jobs.JobRun,
    work: Iterable[tuple[JobItem, Callable[[], Any]]],
    handle: Callable[[JobItem, Fetched], None],
    *,
    uses_database: bool = False,
) -> None:
    """Run each item's Convai call in the pool and `handle` its result in this thread, in
    completion order, while asking the job whether to stop.

    A call runs in the audit context of the job (origin "task <kind> #<id>"). With
    `uses_database` the call may also write through the services (a bundle's create or update:
    each commits on its own, never holding a transaction across its Convai call); the pool
    thread's database connection is closed after each item."""
    concurrency = max(1, settings.CONVAI_JOB_CONCURRENCY)
    sessions: set[requests.Session] = set()

    def call(fetch: Callable[[], Any]) -> Fetched:
        sessions.add(thread_session())
        result = Fetched()
        try:
            result.value = fetch()
        except Exception as error:  # handled per item by the caller
            result.error = error
        finally:
            if uses_database and not isinstance(pool, _InThisThread):
                connection.close()
        return result

    pending: Iterator[tuple[JobItem, Callable[[], Any]]] = iter(work)
    exhausted = False
    in_flight: dict[Future[Fetched], JobItem] = {}
    pool: ThreadPoolExecutor | _InThisThread
    if uses_database and connection.vendor == "sqlite":
        # SQLite has one writer at a time: writing items are done here, one after another.
        pool, concurrency = _InThisThread(), 1
    else:
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"job-{run.job.pk}")
    # This thread gives up the GIL at every database call; with the default 5 ms switch
    # interval it then waits behind the pool's HTTP threads each time (the "convoy effect"),
    # which made the database side, not Convai, the bottleneck. A worker runs one task at a
    # time, so the interval is lowered for the job's duration only.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL))
    try:
        while True:
            while not exhausted and len(in_flight) < 2 * concurrency and not run.should_stop():
                try:
                    item, fetch = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                # A copy of this thread's context: the audit origin reaches the pool thread.
                in_flight[pool.submit(contextvars.copy_context().run, call, fetch)] = item
            if not in_flight:
                break
            finished, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
            # The results at hand are stored in one transaction (one commit and one update of
            # the job's totals, not one per item); each item keeps its own savepoint, so one
            # that fails leaves the others. The batch commits only if this run still owns the
            # job.
            try:
                with transaction.atomic():
                    for future in finished:
                        item = in_flight.pop(future)
                        if not run.lost:
                            handle(item, future.result())
                    run.flush()
            except jobs.LostJob:
                run.discard()
            except BaseException:
                run.discard()
                raise
            if run.should_stop():
                exhausted = True  # take no more; those in flight are still stored
                if run.lost:
                    for future in list(in_flight):
                        future.cancel()
    finally:
        sys.setswitchinterval(switch_interval)
        pool.shutdown(wait=True, cancel_futures=True)
        for session in sessions:
            session.close()


class _InThisThread:
    """An executor that runs each call at once in the calling thread (run_pooled on SQLite)."""

    def submit(self, fn: Callable[..., Fetched], *args: Any) -> Future[Fetched]:
        future: Future[Fetched] = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


class _Discard(Exception):
    """The job item could not be recorded (another run has it): undo the character too."""


def _store(run: jobs.JobRun, item: JobItem, state: str, message: str, **extra: Any) -> None:
    if not run.record_item(item, state, message, **extra):
        raise _Discard()


def _failed(
    action: str,
    actor: Membership,
    error: BaseException,
    call: operations.ConvaiCall,
    *,
    character: Character | None = None,
    item: JobItem,
    job: Job,
) -> str:
    """Record an item's failed read as a page's would be (a character Convai no longer has is
    flagged) and return the item's message (Convai's, as the client words it)."""
    if isinstance(error, ConvaiError):
        return operations.record_convai_failure(
            action=action,
            actor=actor,
            error=error,
            call=call,
            character=character,
            convai_id=item.target_id,
            label=item.label,
            known=character is not None,
            job=job.pk,
        ).message
    logger.error("Job item failed unexpectedly", exc_info=error)
    operations.record_character_event(
        action=action,
        actor=actor,
        character=character,
        convai_id=item.target_id,
        label=item.label,
        outcome=Outcome.FAILURE,
        details=call.details(job=job.pk, error=type(error).__name__),
    )
    return "An unexpected error stopped this item."


# --- Import all of a key ------------------------------------------------------------------------


class PreviewStatus:
    NEW = "new"
    HERE = "here"
    CHANGED = "changed"
    ELSEWHERE = "elsewhere"


@dataclass(frozen=True)
class PreviewRow:
    convai_id: str
    name: str
    voice_type: str
    status: str
    character_id: int | None = None
    changed_fields: tuple[str, ...] = ()

    @property
    def selectable(self) -> bool:
        return self.status in (PreviewStatus.NEW, PreviewStatus.ELSEWHERE)

    @property
    def checked(self) -> bool:
        return self.status == PreviewStatus.NEW


@dataclass(frozen=True)
class ImportPreview:
    api_key: ApiKey
    rows: list[PreviewRow]
    quota_remaining: int | None = None
    quota_checked_at: datetime | None = None

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def new(self) -> int:
        return self.count(PreviewStatus.NEW)

    @property
    def here(self) -> int:
        return self.count(PreviewStatus.HERE)

    @property
    def changed(self) -> int:
        return self.count(PreviewStatus.CHANGED)

    @property
    def elsewhere(self) -> int:
        return self.count(PreviewStatus.ELSEWHERE)

    @property
    def selectable(self) -> int:
        return sum(1 for row in self.rows if row.selectable)


def _key_characters(actor: Membership, api_key: ApiKey) -> list[CharacterDetails]:
    """The key's characters (one `list` call), failures recorded like any import's."""
    call = operations.ConvaiCall(api_key=api_key)
    try:
        client = job_client(api_key, actor)
    except ApiKeyUnusable as error:
        raise errors.KeyNotUsable(error.message) from None
    with operations.convai_calls(
        action="character.import", actor=actor, call=call, label=key_label(api_key)
    ):
        return client.list_characters()


def key_label(api_key: ApiKey) -> str:
    return operations.key_label(api_key)


def preview_import(*, actor: Membership, api_key_id: UUID | str) -> ImportPreview:
    """What importing everything of one of my keys would do: each of the key's characters is
    new, already here (unchanged or changed in Convai since our snapshot), or in another team
    (never named)."""
    operations.authorize(actor=actor, action="character.import")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=api_key_id, label="import all"
    )
    remote = _key_characters(actor, api_key)
    ids = [item.character_id for item in remote]
    ours = {
        character.convai_id: character
        for character in Character.objects.filter(
            team=actor.team, deleted_at__isnull=True, convai_id__in=ids
        ).only("pk", "convai_id", "snapshot", "name", "voice_type", "actions", "language_codes")
    }
    elsewhere = set(
        Character.objects.filter(deleted_at__isnull=True, convai_id__in=ids)
        .exclude(team=actor.team)
        .values_list("convai_id", flat=True)
    )
    rows = []
    for item in remote:
        mine = ours.get(item.character_id)
        if mine is not None:
            known = fields_from_snapshot(mine.snapshot) or mine.editable()
            changes = differences(known, fields_from_remote(item))
            rows.append(
                PreviewRow(
                    item.character_id,
                    item.character_name,
                    item.voice_type,
                    PreviewStatus.CHANGED if changes else PreviewStatus.HERE,
                    mine.pk,
                    tuple(change.label for change in changes),
                )
            )
        else:
            status = (
                PreviewStatus.ELSEWHERE if item.character_id in elsewhere else PreviewStatus.NEW
            )
            rows.append(PreviewRow(item.character_id, item.character_name, item.voice_type, status))
    order = {PreviewStatus.NEW: 0, PreviewStatus.ELSEWHERE: 1, PreviewStatus.CHANGED: 2}
    rows.sort(key=lambda row: (order.get(row.status, 3), natural_key(row.name), row.convai_id))
    remaining, checked_at = quota_of(api_key)
    return ImportPreview(api_key, rows, remaining, checked_at)


def start_import_all(
    *,
    actor: Membership,
    api_key_id: UUID | str,
    convai_ids: Iterable[str] = (),
    all_new: bool = False,
    all_elsewhere: bool = False,
    skip: Iterable[str] = (),
) -> Job:
    """Queue the import of the chosen characters of one of my keys. The key's list is read
    again, so only characters the key owns and the team does not have are queued.

    The choice scales with the key, not with the form: `all_new` takes every character no team
    has, `all_elsewhere` every one another team has too, `convai_ids` adds single ones, and
    `skip` leaves some out (a page sends its exceptions, never one field per character)."""
    operations.authorize(actor=actor, action="character.import")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=api_key_id, label="import all"
    )
    picked, left_out = set(convai_ids), set(skip)
    if not (picked or all_new or all_elsewhere):
        raise errors.CharacterError("Choose at least one character to import.")
    present = set(
        Character.objects.filter(team=actor.team, deleted_at__isnull=True).values_list(
            "convai_id", flat=True
        )
    )
    remote = [item for item in _key_characters(actor, api_key) if item.character_id not in present]
    elsewhere: set[str] = set()
    if all_new or all_elsewhere:
        elsewhere = set(
            Character.objects.filter(
                deleted_at__isnull=True, convai_id__in=[item.character_id for item in remote]
            ).values_list("convai_id", flat=True)
        )

    def chosen(convai_id: str) -> bool:
        if convai_id in left_out:
            return False
        if convai_id in picked:
            return True
        return all_elsewhere if convai_id in elsewhere else all_new

    items = [
        jobs.NewItem(label=item.character_name or item.character_id, target_id=item.character_id)
        for item in remote
        if chosen(item.character_id)
    ]
    if not items:
        raise errors.CharacterError(
            "None of the chosen characters can be imported any more: they are already in this "
            "team or no longer under this key."
        )
    return jobs.start_job(
        actor=actor,
        kind=Job.Kind.IMPORT_ALL,
        scope=jobs.key_scope(api_key),
        task=import_all,
        items=items,
        api_key=api_key,
        params={
            "chosen": len(items),
            "all_new": all_new,
            "all_elsewhere": all_elsewhere,
            "left_out": len(left_out),
        },
    )


def _import_body(run: jobs.JobRun) -> None:
    job, actor = run.job, run.actor
    operations.authorize(actor=actor, action="character.import")
    if job.api_key_id is None:
        raise jobs.JobError("The API key of this import was deleted.")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=job.api_key_id, label=job.key_label
    )
    try:
        client = job_client(api_key, actor)
    except ApiKeyUnusable as error:
        raise jobs.JobError(error.message) from None

    def work() -> Iterator[tuple[JobItem, Callable[[], CharacterDetails]]]:
        for item in list(run.pending()):
            yield item, partial(get_patiently, client, item.target_id)

    def handle(item: JobItem, fetched: Fetched) -> None:
        call = operations.ConvaiCall(api_key=api_key, started=fetched.started)
        if fetched.error is not None:
            with transaction.atomic():
                message = _failed(
                    "character.import", actor, fetched.error, call, item=item, job=job
                )
                run.record_item(item, JobItem.State.FAILED, message)
            return
        details: CharacterDetails = fetched.value
        try:
            with transaction.atomic():
                character = records.store_new_character(
                    actor=actor,
                    convai_id=details.character_id,
                    api_key=api_key,
                    fields=fields_from_remote(details),
                    snapshot=operations.snapshot_of(details),
                    reason=Revision.Reason.IMPORTED,
                    action="character.import",
                    call=call,
                    extra={"job": job.pk},
                )
                _store(run, item, JobItem.State.DONE, "Imported", local_id=character.pk)
        except errors.AlreadyInTeam as error:
            run.record_item(
                item,
                JobItem.State.SKIPPED,
                "Already in this team (imported meanwhile).",
                local_id=error.character.pk,
            )
        except errors.CharacterError as error:
            run.record_item(item, JobItem.State.FAILED, error.message)
        except _Discard:
            pass

    run_pooled(run, work(), handle)


@task()
def import_all(job_id: int) -> str:
    """Import the characters a job lists (one `get` each) into its team."""
    return jobs.run_job(job_id, _import_body, task=import_all)


# --- Sync all of a team -------------------------------------------------------------------------


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
        kind=Job.Kind.SYNC_ALL,
        scope=jobs.sync_scope(actor.team_id),
        task=sync_all,
        items=[jobs.NewItem(name, convai_id, pk) for pk, name, convai_id in characters],
    )


def _sync_body(run: jobs.JobRun) -> None:
    job, actor = run.job, run.actor
    operations.authorize(actor=actor, action="character.sync")
    characters = {
        character.pk: character
        for character in with_key_state(Character.objects.filter(team_id=job.team_id))
    }
    clients: dict[Any, ConvaiClient | str] = {}
    seen_versions: dict[int, int] = {}

    def client_of(character: Character) -> ConvaiClient | str:
        """The bound key's client, or why there is none (an item message)."""
        if not getattr(character, "key_usable", False) or character.bound_key is None:
            return errors.NoUsableKey.default_message
        key_id = character.bound_key_id
        if key_id not in clients:
            try:
                clients[key_id] = job_client(character.bound_key, actor)
            except ApiKeyUnusable as error:
                clients[key_id] = error.message
        return clients[key_id]

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
            yield item, partial(get_patiently, client, character.convai_id)

    def handle(item: JobItem, fetched: Fetched) -> None:
        character = characters[item.local_id or 0]
        call = operations.ConvaiCall(api_key=character.bound_key, started=fetched.started)
        if fetched.error is not None:
            with transaction.atomic():
                message = _failed(
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
        except _Discard:
            pass

    run_pooled(run, work(), handle)


def _sync_one(
    run: jobs.JobRun,
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
        _store(run, item, JobItem.State.SKIPPED, "Deleted here while the job ran.")
        return
    if synced.outcome == records.SyncResult.SAVED_MEANWHILE:
        _store(
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
    _store(run, item, JobItem.State.DONE, message, local_id=character.pk)


@task()
def sync_all(job_id: int) -> str:
    """Sync the characters a job lists from Convai (one `get` each)."""
    return jobs.run_job(job_id, _sync_body, task=sync_all)


# What resumes each kind of job (the job pages look it up by kind).
TASKS: dict[str, Task[[int], str]] = {Job.Kind.IMPORT_ALL: import_all, Job.Kind.SYNC_ALL: sync_all}
