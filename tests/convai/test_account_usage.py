"""`ConvaiClient.get_account_usage`: against the live sandbox (the contract), and through the
fake transport for the answer shapes only Convai gives (missing fields, the email's other
homes, timestamps with or without a timezone)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from convai.client import ConvaiClient
from convai.errors import ConvaiAuthError, ConvaiProtocolError, ConvaiUnavailableError
from convai.types import AccountUsage, UsageMetric
from sandbox.services import configure_sandbox_account, create_sandbox_key, set_fault
from tests.convai.fake_http import install
from tests.support.sandbox import hits

MakeClient = Callable[..., ConvaiClient]
KEY = "k" * 32
BASE = "https://convai.test"
FULL = {
    "usage": {"user_name": "studio", "email": "lead@studio.example.com"},
    "usage_v2": {
        "plan_name": "Professional",
        "expiry_ts": "2030-01-31T12:00:00+00:00",
        "metrics": [
            {"id": "interactions", "usage_details": [{"limit": 5000, "usage": 120}]},
            {"id": "core-api", "usage_details": [{"limit": 10000, "usage": 7}]},
        ],
    },
}


def read(monkeypatch: pytest.MonkeyPatch, payload: Any) -> AccountUsage:
    install(monkeypatch, [(200, payload)])
    return ConvaiClient(KEY, base_url=BASE, backoff=0).get_account_usage()


# --- contract: the live sandbox ---------------------------------------------------------------


def test_names_the_account_its_plan_and_quota(
    make_client: MakeClient, transactional_db: None
) -> None:
    configure_sandbox_account(
        "studio",
        email="lead@studio.example.com",
        plan_name="Professional",
        renews_at=datetime(2030, 1, 31, tzinfo=UTC),
        limits={"core-api": 5000},
        usage={"interactions": 120},
    )
    writer = make_client(create_sandbox_key("writer", account="studio"))
    engineer = make_client(create_sandbox_key("engineer", account="studio"))
    writer.create_character("Raymond", "MALE", "A criminal mastermind.")
    writer.list_characters()
    usage = engineer.get_account_usage()
    assert (usage.account_name, usage.email, usage.plan_name) == (
        "studio",
        "lead@studio.example.com",
        "Professional",
    )
    assert usage.renews_at == datetime(2030, 1, 31, tzinfo=UTC)
    assert set(usage.metrics) == {"interactions", "core-api", "provider_pool_1", "pixel_streaming"}
    assert usage.metrics["core-api"] == UsageMetric(limit=5000, usage=2)
    assert usage.metrics["interactions"].usage == 120
    assert usage.raw["usage"]["user_name"] == "studio"


def test_an_invalid_key_is_an_auth_error(make_client: MakeClient, sandbox_key: str) -> None:
    with pytest.raises(ConvaiAuthError) as caught:
        make_client("0" * 32).get_account_usage()
    assert caught.value.status == 401


def test_a_missing_key_is_an_auth_error(make_client: MakeClient, sandbox_key: str) -> None:
    with pytest.raises(ConvaiAuthError) as caught:
        make_client("").get_account_usage()
    assert (caught.value.status, caught.value.remote_message) == (400, "api_key not found.")


def test_it_is_a_read_retried_on_an_outage(make_client: MakeClient, sandbox_key: str) -> None:
    set_fault(outage=True)
    before = hits(sandbox_key)
    with pytest.raises(ConvaiUnavailableError):
        make_client(sandbox_key, read_retries=2).get_account_usage()
    assert hits(sandbox_key) - before == 3


def test_a_malformed_answer_is_a_protocol_error(make_client: MakeClient, sandbox_key: str) -> None:
    set_fault(malformed=True)
    with pytest.raises(ConvaiProtocolError):
        make_client(sandbox_key).get_account_usage()


# --- tolerant reading: the fake transport -----------------------------------------------------


def test_posts_an_empty_object_to_the_documented_path(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, [(200, FULL)])
    ConvaiClient(KEY, base_url=BASE).get_account_usage()
    assert (fake.sent[0].method, fake.sent[0].url) == ("POST", f"{BASE}/user/user-api-usage")
    assert fake.sent[0].headers["CONVAI-API-KEY"] == KEY
    assert fake.bodies() == [{}]


def test_a_full_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = read(monkeypatch, FULL)
    assert usage == AccountUsage(
        account_name="studio",
        email="lead@studio.example.com",
        plan_name="Professional",
        renews_at=datetime(2030, 1, 31, 12, tzinfo=UTC),
        metrics={
            "interactions": UsageMetric(limit=5000.0, usage=120.0),
            "core-api": UsageMetric(limit=10000.0, usage=7.0),
        },
    )
    assert usage.raw == FULL


@pytest.mark.parametrize("payload", [{}, {"usage": None, "usage_v2": "x"}, {"usage_v2": {}}])
def test_every_field_may_be_missing(monkeypatch: pytest.MonkeyPatch, payload: Any) -> None:
    assert read(monkeypatch, payload) == AccountUsage()


@pytest.mark.parametrize(
    "payload",
    [
        {"usage": {"email": "a@x.example"}},
        {"usage": {"user_email": "a@x.example"}},
        {"email": "a@x.example", "usage": {"user_name": "a"}},
        {"usage": {"email": "", "user_email": "a@x.example"}, "email": "other@x.example"},
    ],
    ids=["usage.email", "usage.user_email", "top-level", "first-non-empty"],
)
def test_the_email_is_found_wherever_it_is(monkeypatch: pytest.MonkeyPatch, payload: Any) -> None:
    assert read(monkeypatch, payload).email == "a@x.example"


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("2030-01-31T12:00:00", datetime(2030, 1, 31, 12, tzinfo=UTC)),
        ("2030-01-31T12:00:00Z", datetime(2030, 1, 31, 12, tzinfo=UTC)),
        (
            "2030-01-31T12:00:00.250+05:30",
            datetime(2030, 1, 31, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=5.5))),
        ),
        ("2030-01-31", datetime(2030, 1, 31, tzinfo=UTC)),
        ("next month", None),
        ("", None),
        (None, None),
        ([2030], None),
    ],
    ids=["naive", "zulu", "offset", "date", "garbage", "empty", "null", "list"],
)
def test_the_renewal_date_with_or_without_a_timezone(
    monkeypatch: pytest.MonkeyPatch, expiry: Any, expected: datetime | None
) -> None:
    usage = read(monkeypatch, {"usage_v2": {"expiry_ts": expiry}})
    assert usage.renews_at == expected
    assert usage.renews_at is None or usage.renews_at.tzinfo is not None


def test_unreadable_metrics_are_skipped_or_left_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = [
        {"id": "interactions", "usage_details": [{"limit": "100", "usage": None}]},
        {"id": "core-api", "usage_details": []},
        {"id": "provider_pool_1", "usage_details": {"limit": 5, "usage": 1.5}},
        {"id": "pixel_streaming", "usage_details": [{"limit": True, "usage": "lots"}]},
        {"id": "interactions", "usage_details": [{"limit": 1, "usage": 1}]},
        {"usage_details": [{"limit": 1}]},
        {"id": "new-metric"},
        "not a metric",
        None,
    ]
    usage = read(monkeypatch, {"usage_v2": {"metrics": metrics}})
    assert usage.metrics == {
        "interactions": UsageMetric(limit=100.0, usage=None),
        "core-api": UsageMetric(),
        "provider_pool_1": UsageMetric(limit=5.0, usage=1.5),
        "pixel_streaming": UsageMetric(),
        "new-metric": UsageMetric(),
    }


def test_metrics_keyed_by_id_are_read_too(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = {"usage_v2": {"metrics": {"core-api": {"usage_details": [{"limit": 9}]}}}}
    assert read(monkeypatch, payload).metrics == {"core-api": UsageMetric(limit=9.0)}


@pytest.mark.parametrize("body", [[FULL], b"", b"<html>ok</html>"], ids=["list", "empty", "html"])
def test_an_answer_that_is_not_an_object_is_a_protocol_error(
    monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    with pytest.raises(ConvaiProtocolError):
        read(monkeypatch, body)


def test_an_error_key_in_a_2xx_answer_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConvaiAuthError):
        read(monkeypatch, {"API_ERROR": "Invalid API key provided."})
