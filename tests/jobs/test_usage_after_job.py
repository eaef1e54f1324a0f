"""A job spends quota: when it ends, the account usage of the keys it called Convai with is
refreshed (the import's key; a sync's bound keys), and every periodic pass the product relies
on is registered with the scheduler."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from characters.bulk import importing, syncing
from jobs import periodic
from keys.models import ApiKey
from teams.models import Membership
from tests.jobs.support import fresh, run_worker, seed_remote
from tests.support.characters import Key, record_requests

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_without_counters"),
]

USAGE_PATH = "/user/user-api-usage"
STALE = {"interactions": {"limit": 1, "usage": 999}}


def make_stale(key: Key) -> None:
    ApiKey.objects.filter(pk=key.pk).update(
        usage_metrics=STALE, usage_checked_at=timezone.now() - timedelta(hours=2)
    )


def test_an_import_refreshes_its_keys_usage_when_it_ends(
    editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = seed_remote(editor_key, 3)
    job = importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    make_stale(editor_key)
    sent = record_requests(monkeypatch)

    run_worker()

    assert fresh(job).state == "done"
    assert sum(1 for path, _ in sent if path == USAGE_PATH) == 1
    api_key = ApiKey.objects.get(pk=editor_key.pk)
    assert api_key.usage_metrics != STALE
    assert api_key.usage_checked_at is not None
    assert api_key.usage_checked_at > timezone.now() - timedelta(minutes=1)


def test_a_sync_refreshes_the_bound_keys_usage_when_it_ends(
    editor: Membership, editor_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = seed_remote(editor_key, 2)
    importing.start_import_all(
        actor=editor, api_key_id=editor_key.pk, convai_ids=[c.character_id for c in remote]
    )
    run_worker()
    job = syncing.start_sync_all(actor=editor)
    make_stale(editor_key)
    sent = record_requests(monkeypatch)

    run_worker()

    assert fresh(job).state == "done"
    assert sum(1 for path, _ in sent if path == USAGE_PATH) == 1
    assert ApiKey.objects.get(pk=editor_key.pk).usage_metrics != STALE


def test_the_periodic_passes_are_registered() -> None:
    names = set(periodic.registered())
    assert {
        "jobs.sweep_stale",
        "keys.refresh_stale_usage",
        "characters.check_drift",
        "characters.reconcile_pending_operations",
        "characters.prune_expired_uploads",
    } <= names
