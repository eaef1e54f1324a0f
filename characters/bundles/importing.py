"""Importing a bundle into one of the member's keys: `preview_bundle` says what each
character would do (be created under the key's account, update the character of that account
with the same Convai ID, or be skipped: already identical here); `start_bundle_import` runs it as
a background job (one item per character) through jobs.services, each character through the
character services (create, import, update), so every change has its revision and audit event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from django_tasks import task

from audit.services import record
from convai_admin.display import natural_key
from jobs import running
from jobs import services as jobs
from jobs.models import Job, JobItem
from jobs.pool import Fetched, run_pooled
from keys.models import ApiKey
from teams.models import Membership

from .. import errors, operations, services
from .. import importing as single_import
from ..bulk.items import key_characters
from ..models import Character
from ..remote import differences, fields_from_remote
from .schema import Bundle, BundleCharacter
from .uploads import KIND, discard_upload, load_upload

logger = logging.getLogger("convai_admin.jobs")


class Plan:
    CREATE = "create"
    UPDATE = "update"
    SKIP = "skip"


@dataclass(frozen=True)
class PreviewRow:
    entry: BundleCharacter
    plan: str
    reason: str
    changed: tuple[str, ...] = ()
    local_id: int | None = None


@dataclass(frozen=True)
class BundlePreview:
    api_key: ApiKey
    rows: list[PreviewRow] = field(default_factory=list)

    def count(self, plan: str) -> int:
        return sum(1 for row in self.rows if row.plan == plan)

    @property
    def creates(self) -> int:
        return self.count(Plan.CREATE)

    @property
    def updates(self) -> int:
        return self.count(Plan.UPDATE)

    @property
    def skips(self) -> int:
        return self.count(Plan.SKIP)

    @property
    def work(self) -> int:
        return self.creates + self.updates


def _plan(
    entry: BundleCharacter,
    owned: Mapping[str, Any],
    local: Mapping[str, Character],
) -> PreviewRow:
    remote = owned.get(entry.convai_id)
    if remote is None:
        return PreviewRow(entry, Plan.CREATE, "New under this key's account.")
    mine = local.get(entry.convai_id)
    known = fields_from_remote(remote)
    if known.get("backstory") is None and mine is not None:
        known["backstory"] = mine.backstory  # Convai's list has no backstories
    changes = differences(known, entry.fields())
    labels = tuple(change.label for change in changes)
    if mine is None:
        return PreviewRow(
            entry,
            Plan.UPDATE,
            "Owned by this key's account; it joins this team"
            + (" and is updated." if changes else "."),
            labels,
        )
    if not changes:
        return PreviewRow(entry, Plan.SKIP, "Already identical.", (), mine.pk)
    return PreviewRow(entry, Plan.UPDATE, "Updated in place.", labels, mine.pk)


def _owned(actor: Membership, api_key: ApiKey) -> dict[str, Any]:
    """The key's account's characters by Convai ID (one `list` call)."""
    return {item.character_id: item for item in key_characters(actor, api_key)}


def _local(actor: Membership, ids: Iterable[str]) -> dict[str, Character]:
    return {
        character.convai_id: character
        for character in Character.objects.filter(
            team=actor.team, deleted_at__isnull=True, convai_id__in=list(ids)
        )
    }


def preview_bundle(*, actor: Membership, api_key_id: UUID | str, bundle: Bundle) -> BundlePreview:
    """What importing the bundle with this key would do, character by character."""
    operations.authorize(actor=actor, action="character.import")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=api_key_id, label="bundle import"
    )
    owned = _owned(actor, api_key)
    local = _local(actor, (entry.convai_id for entry in bundle.characters))
    rows = [_plan(entry, owned, local) for entry in bundle.characters]
    order = {Plan.CREATE: 0, Plan.UPDATE: 1, Plan.SKIP: 2}
    rows.sort(key=lambda row: (order[row.plan], natural_key(row.entry.name), row.entry.convai_id))
    return BundlePreview(api_key, rows)


# --- Apply (a background job) --------------------------------------------------------------------


def start_bundle_import(
    *, actor: Membership, api_key_id: UUID | str, token: str, skip: Iterable[str] = ()
) -> Job:
    """Queue the bundle's creates and updates (previewed again now, so what was identical is
    still skipped); `skip` leaves out characters the member unticked."""
    bundle, filename = load_upload(actor=actor, token=token)
    preview = preview_bundle(actor=actor, api_key_id=api_key_id, bundle=bundle)
    unticked = set(skip)
    items = [
        jobs.NewItem(label=row.entry.name, target_id=row.entry.convai_id, local_id=row.local_id)
        for row in sorted(preview.rows, key=lambda row: row.entry.ordinal)
        if row.plan != Plan.SKIP and row.entry.convai_id not in unticked
    ]
    if not items:
        raise errors.CharacterError(
            "Nothing to import: every character of the bundle is already identical here, or "
            "you left them all out."
        )
    job = jobs.start_job(
        actor=actor,
        kind=KIND,
        scope=jobs.key_scope(preview.api_key),
        items=items,
        api_key=preview.api_key,
        params={
            "bundle": token,
            "filename": filename,
            "sha256": bundle.sha256,
            "characters": len(bundle.characters),
            "skipped": len(bundle.characters) - len(items),
        },
    )
    record(
        "character.import_bundle",
        actor=actor.user,
        team=actor.team,
        target_type="job",
        target_id=job.pk,
        target_label=filename,
        details={
            "phase": "start",
            "job": job.pk,
            "filename": filename,
            "sha256": bundle.sha256,
            "create": preview.creates,
            "update": preview.updates,
            "skip": preview.skips + len(unticked),
            "key_used": operations.key_label(preview.api_key),
        },
    )
    return job


def _bundle_body(run: running.JobRun) -> None:
    job, actor = run.job, run.actor
    operations.authorize(actor=actor, action="character.import")
    if job.api_key_id is None:
        raise jobs.JobError("The API key of this import was deleted.")
    token = str(job.params.get("bundle", ""))
    try:
        bundle, filename = load_upload(actor=actor, token=token)
    except errors.CharacterError as error:
        raise jobs.JobError(error.message) from None
    if bundle.sha256 != job.params.get("sha256"):
        raise jobs.JobError("The uploaded bundle changed since the import was confirmed.")
    api_key = operations.own_key(
        action="character.import", actor=actor, api_key_id=job.api_key_id, label=filename
    )
    entries = {entry.convai_id: entry for entry in bundle.characters}
    try:
        owned = _owned(actor, api_key)
    except errors.CharacterError as error:
        raise jobs.JobError(error.message) from None

    # The same pooled engine as import all (jobs/pool.py): up to
    # CONVAI_JOB_CONCURRENCY characters at once, each through the page services in a pool
    # thread; the results are recorded here, in batches, between the job's stop checks.
    def work() -> Iterator[tuple[JobItem, Callable[[], tuple[str, str, int | None]]]]:
        for item in list(run.pending()):
            entry = entries.get(item.target_id)
            if entry is None:
                run.record_item(item, JobItem.State.FAILED, "Not in the bundle any more.")
                continue
            yield item, partial(_apply_one, run, item, api_key, entry, owned)

    def handle(item: JobItem, fetched: Fetched) -> None:
        error = fetched.error
        if isinstance(error, errors.CharacterError):  # recorded by the service that refused
            run.record_item(item, JobItem.State.FAILED, error.message)
        elif error is not None:
            logger.error(
                "Bundle import %s: %s failed unexpectedly", job.pk, item.target_id, exc_info=error
            )
            run.record_item(item, JobItem.State.FAILED, "An unexpected error stopped this item.")
        else:
            state, message, local_id = fetched.value
            run.record_item(item, state, message, local_id=local_id)

    run_pooled(run, work(), handle, uses_database=True)
    run.should_stop(force=True)
    _finished(run, filename, token)


def _finished(run: running.JobRun, filename: str, token: str) -> None:
    job = run.job
    if run.lost or run.pending().exists():
        return  # cancelled or taken over: the upload stays for a resume
    job.refresh_from_db(fields=["done", "skipped", "failed"])
    discard_upload(actor=run.actor, token=token)
    record(
        "character.import_bundle",
        actor=run.actor.user,
        team=job.team,
        target_type="job",
        target_id=job.pk,
        target_label=filename,
        details={"phase": "finish", "job": job.pk, **jobs.counts(job)},
    )


def _apply_one(
    run: running.JobRun,
    item: JobItem,
    api_key: ApiKey,
    entry: BundleCharacter,
    owned: Mapping[str, Any],
) -> tuple[str, str, int | None]:
    """One character through the services: (item state, message, local character)."""
    actor = run.actor
    if entry.convai_id not in owned:
        # One create per item, whatever happens to the worker: the item's own operation token
        # makes a second attempt (a resume after a run died mid-create) find the first one's
        # outcome instead of creating twice; one whose outcome is unknown fails this item and
        # is resolved by reconciliation (reconciliation.reconcile_pending_operations).
        try:
            saved = services.create_character(
                actor=actor,
                api_key_id=api_key.pk,
                token=f"job-{run.job.pk}-item-{item.pk}",
                **entry.fields(),
            )
        except errors.OperationDone as done:
            character = done.character
            return (
                JobItem.State.DONE,
                "Created (by the run before the resume).",
                character.pk if character is not None else None,
            )
        message = "Created."
        if saved.warnings:
            message += " " + " ".join(saved.warnings)
        return JobItem.State.DONE, message, saved.character.pk
    character = Character.objects.filter(
        team=actor.team, convai_id=entry.convai_id, deleted_at__isnull=True
    ).first()
    joined = character is None
    if character is None:
        character = single_import.import_character(
            actor=actor, api_key_id=api_key.pk, convai_id=entry.convai_id
        ).character
    changes = differences(character.editable(), entry.fields())
    if not changes:
        if joined:
            return JobItem.State.DONE, "Added to this team (already identical).", character.pk
        return JobItem.State.SKIPPED, "Already identical.", character.pk
    saved = services.update_character(
        actor=actor,
        character_id=character.pk,
        expected_version=character.version,
        fields={change.field: getattr(entry, change.field) for change in changes},
        overwrite_drift=True,
    )
    labels = ", ".join(change.label for change in changes)
    prefix = "Added to this team and updated" if joined else "Updated"
    return JobItem.State.DONE, f"{prefix}: {labels}.", saved.character.pk


@task()
def import_bundle(job_id: int) -> str:
    """Create or update each character of an uploaded bundle under the job's key."""
    return running.run_job(job_id, _bundle_body, task=import_bundle)
