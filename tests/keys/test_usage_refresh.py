"""Usage refreshes by itself: after a job (the job engine calls refresh_usage_after_job with the
keys it used) and when older than an hour (refresh_stale_usage, a periodic pass). Against the
sandbox over HTTP; failures leave what was known and never stop the pass."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from keys.models import ApiKey
from keys.services import (
    add_api_key,
    refresh_stale_usage,
    refresh_usage_after_job,
    revoke_api_key,
)
from sandbox.services import create_sandbox_key, revoke_sandbox_keys
from tests.keys.support import UNREACHABLE, new_user
from tests.support.characters import record_requests

STALE = {"interactions": {"limit": 1, "usage": 999}}
USAGE_PATH = "/user/user-api-usage"


@pytest.fixture
def stored(sandbox: str) -> Any:
    """stored(label, checked_ago=None) -> a verified key whose usage was checked that long
    ago (None: never), with stale figures."""

    def make(label: str = "usage", checked_ago: timedelta | None = timedelta(hours=2)) -> ApiKey:
        raw = create_sandbox_key(label)
        api_key = add_api_key(actor=new_user(), label=label, raw_key=raw)
        checked = None if checked_ago is None else timezone.now() - checked_ago
        ApiKey.objects.filter(pk=api_key.pk).update(usage_metrics=STALE, usage_checked_at=checked)
        api_key.refresh_from_db()
        return api_key

    return make


def usage_calls(sent: list[tuple[str, Any]]) -> int:
    return sum(1 for path, _ in sent if path == USAGE_PATH)


# --- older than an hour -------------------------------------------------------------------------


def test_a_pass_refreshes_keys_checked_more_than_an_hour_ago(stored: Any, monkeypatch: Any) -> None:
    old, never, fresh = stored("old"), stored("never", None), stored("fresh", timedelta(minutes=5))
    sent = record_requests(monkeypatch)
    before = timezone.now()

    summary = refresh_stale_usage()

    assert summary == "usage refreshed for 2 keys"
    assert usage_calls(sent) == 2
    for api_key in (old, never):
        api_key.refresh_from_db()
        assert api_key.usage_checked_at is not None and api_key.usage_checked_at >= before
        assert api_key.usage_metrics != STALE
        assert "interactions" in api_key.usage_metrics
    fresh.refresh_from_db()
    assert fresh.usage_metrics == STALE
    # Routine reads of cached figures: no audit event per key per hour, no "last used".
    assert not AuditEvent.objects.filter(action="api_key.usage_checked").exists()
    assert old.last_used_at is None


def test_the_age_is_a_setting(stored: Any, settings: Any) -> None:
    stored("ten-minutes", timedelta(minutes=10))
    assert refresh_stale_usage() == "no key's usage was older than 60 minutes"
    settings.CONVAI_USAGE_MAX_AGE_SECONDS = 5 * 60
    assert refresh_stale_usage() == "usage refreshed for 1 key"


def test_revoked_and_unverified_keys_are_left_alone(
    stored: Any, sandbox: str, monkeypatch: Any
) -> None:
    revoked = stored("revoked")
    revoke_api_key(actor=revoked.owner, api_key_id=revoked.pk)
    unverified = add_api_key(
        actor=new_user(),
        label="unverified",
        raw_key=create_sandbox_key("u"),
        skip_verification=True,
    )
    assert unverified.verified_at is None
    sent = record_requests(monkeypatch)
    assert refresh_stale_usage() == "no key's usage was older than 60 minutes"
    assert usage_calls(sent) == 0


def test_one_pass_refreshes_at_most_a_batch_oldest_first(stored: Any, settings: Any) -> None:
    older = stored("older", timedelta(hours=5))
    newer = stored("newer", timedelta(hours=2))
    settings.CONVAI_USAGE_REFRESH_BATCH = 1
    assert refresh_stale_usage() == "usage refreshed for 1 key; more are due next pass"
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.usage_metrics != STALE and newer.usage_metrics == STALE


def test_a_key_convai_no_longer_accepts_keeps_what_was_known(stored: Any) -> None:
    gone, fine = stored("gone"), stored("fine")
    revoke_sandbox_keys("gone")
    summary = refresh_stale_usage()
    assert summary == "usage refreshed for 1 key; 1 failed (rejected by Convai: 1)"
    gone.refresh_from_db()
    fine.refresh_from_db()
    assert gone.usage_metrics == STALE and gone.verified_at is not None
    assert fine.usage_metrics != STALE


def test_convai_unreachable_fails_the_pass_softly(stored: Any, settings: Any) -> None:
    api_key = stored("offline")
    checked = api_key.usage_checked_at
    settings.CONVAI_API_BASE_URL = UNREACHABLE
    assert refresh_stale_usage() == ("usage refreshed for 0 keys; 1 failed (Convai unavailable: 1)")
    api_key.refresh_from_db()
    assert api_key.usage_checked_at == checked and api_key.usage_metrics == STALE


def test_a_tampered_key_is_reported_not_used(stored: Any, monkeypatch: Any) -> None:
    api_key = stored("tampered")
    other = stored("other")
    ApiKey.objects.filter(pk=api_key.pk).update(ciphertext=other.ciphertext)
    sent = record_requests(monkeypatch)
    summary = refresh_stale_usage()
    assert "1 failed (unusable: 1)" in summary
    assert usage_calls(sent) == 1  # only the other key's
    assert AuditEvent.objects.filter(
        action="api_key.usage_checked", outcome="failure", target_id=str(api_key.pk)
    ).exists()


# --- after a job --------------------------------------------------------------------------------


def test_after_a_job_its_keys_are_refreshed_even_if_checked_recently(
    stored: Any, monkeypatch: Any
) -> None:
    used = stored("used", timedelta(minutes=5))
    untouched = stored("untouched", timedelta(minutes=5))
    sent = record_requests(monkeypatch)

    summary = refresh_usage_after_job(api_key_ids=[used.pk, str(used.pk)])

    assert summary == "usage refreshed for 1 key"
    assert usage_calls(sent) == 1
    used.refresh_from_db()
    untouched.refresh_from_db()
    assert used.usage_metrics != STALE and untouched.usage_metrics == STALE


def test_jobs_back_to_back_do_not_ask_again_within_a_minute(stored: Any, monkeypatch: Any) -> None:
    api_key = stored("busy", timedelta(seconds=10))
    sent = record_requests(monkeypatch)
    assert refresh_usage_after_job(api_key_ids=[api_key.pk]) == "no key's usage was due"
    assert usage_calls(sent) == 0


def test_after_a_job_unknown_or_malformed_ids_are_ignored(sandbox: str) -> None:
    assert refresh_usage_after_job(api_key_ids=["not-a-uuid", "0" * 32]) == (
        "no key's usage was due"
    )
    assert refresh_usage_after_job(api_key_ids=[]) == "no key's usage was due"
