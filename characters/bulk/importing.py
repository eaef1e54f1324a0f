"""Import all of a key: the preview (what each of the key's characters would be), the start
(the chosen characters queued as one job), and the task body (one `get` per character, on
the pooled engine of jobs/pool.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from uuid import UUID

from django.db import transaction
from django_tasks import task

from convai.types import CharacterDetails
from convai_admin.display import natural_key
from jobs import running
from jobs import services as jobs
from jobs.models import Job, JobItem
from jobs.pool import Fetched, job_client, patiently, run_pooled
from keys.models import ApiKey
from keys.services import ApiKeyUnusable
from teams.models import Membership

from .. import errors, operations, records
from ..models import Character, Revision
from ..remote import differences, fields_from_remote, fields_from_snapshot
from ..selectors import quota_of
from .items import Discard, failed, key_characters, store

# This job kind's name (registered in characters/job_kinds.py).
IMPORT_ALL = "import_all"


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


def preview_import(*, actor: Membership, api_key_id: UUID | str) -> ImportPreview:
    """What importing everything of one of my keys would do: each of the key's characters is
    new, already here (unchanged or changed in Convai since our snapshot), or in another team
    (never named)."""
    operations.authorize(actor=actor, action="character.import")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=api_key_id, label="import all"
    )
    remote = key_characters(actor, api_key)
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
    remote, elsewhere = _importable(actor, api_key, find_elsewhere=all_new or all_elsewhere)

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
        kind=IMPORT_ALL,
        scope=jobs.key_scope(api_key),
        items=items,
        api_key=api_key,
        params={
            "chosen": len(items),
            "all_new": all_new,
            "all_elsewhere": all_elsewhere,
            "left_out": len(left_out),
        },
    )


def _importable(
    actor: Membership, api_key: ApiKey, *, find_elsewhere: bool
) -> tuple[list[CharacterDetails], set[str]]:
    """The key's characters the team does not have, and (if asked) which of them another
    team has."""
    present = set(
        Character.objects.filter(team=actor.team, deleted_at__isnull=True).values_list(
            "convai_id", flat=True
        )
    )
    remote = [item for item in key_characters(actor, api_key) if item.character_id not in present]
    elsewhere: set[str] = set()
    if find_elsewhere:
        elsewhere = set(
            Character.objects.filter(
                deleted_at__isnull=True, convai_id__in=[item.character_id for item in remote]
            ).values_list("convai_id", flat=True)
        )
    return remote, elsewhere


def _import_body(run: running.JobRun) -> None:
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
            yield item, partial(patiently, partial(client.get_character, item.target_id))

    def handle(item: JobItem, fetched: Fetched) -> None:
        call = operations.ConvaiCall(api_key=api_key, started=fetched.started)
        if fetched.error is not None:
            with transaction.atomic():
                message = failed("character.import", actor, fetched.error, call, item=item, job=job)
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
                store(run, item, JobItem.State.DONE, "Imported", local_id=character.pk)
        except errors.AlreadyInTeam as error:
            run.record_item(
                item,
                JobItem.State.SKIPPED,
                "Already in this team (imported meanwhile).",
                local_id=error.character.pk,
            )
        except errors.CharacterError as error:
            run.record_item(item, JobItem.State.FAILED, error.message)
        except Discard:
            pass

    run_pooled(run, work(), handle)


@task()
def import_all(job_id: int) -> str:
    """Import the characters a job lists (one `get` each) into its team."""
    return running.run_job(job_id, _import_body, task=import_all)
