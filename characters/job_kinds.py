"""The background job kinds of characters: everything the job engine and the job pages know
about them (jobs/registry.py), registered by CharactersConfig.ready()."""

from typing import Any

from jobs.models import Job
from jobs.registry import JobKind, StartPage, register
from keys.models import ApiKey

from . import bulk_views
from .bulk import importing, syncing
from .bundles import importing as bundle_importing

CHARACTER_PAGE = "characters:character-detail"


def bound_keys_of_items(job: Job) -> set[Any]:
    """The keys the job's characters are bound to (a sync reads each through its own)."""
    local_ids = job.items.filter(local_id__isnull=False).values("local_id")
    return set(ApiKey.objects.filter(characters__pk__in=local_ids).values_list("pk", flat=True))


KINDS = (
    JobKind(
        name=importing.IMPORT_ALL,
        label="Import from a key",
        task=importing.import_all,
        start_action="character.import",
        item_url=CHARACTER_PAGE,
        keys_spent=bound_keys_of_items,
        start_pages=(StartPage("characters/import-all/", bulk_views.import_all, "import-all"),),
    ),
    JobKind(
        name=syncing.SYNC_ALL,
        label="Sync all from Convai",
        task=syncing.sync_all,
        start_action="character.sync",
        item_url=CHARACTER_PAGE,
        keys_spent=bound_keys_of_items,
        start_pages=(StartPage("characters/sync-all/", bulk_views.sync_all, "sync-all"),),
    ),
    JobKind(
        name=bundle_importing.KIND,
        label="Import a bundle",
        task=bundle_importing.import_bundle,
        start_action="character.import",
        # A bundle's upload is gone once its import finished: it is uploaded again instead.
        no_retry=(
            "A bundle import cannot be retried from here: upload the bundle again; what is "
            "already imported is skipped."
        ),
        item_url=CHARACTER_PAGE,
        keys_spent=bound_keys_of_items,
    ),
)


def register_kinds() -> None:
    for kind in KINDS:
        register(kind)
