"""Fault injection: each fault's exact answer, per-key and global scopes, the command."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from sandbox import views
from sandbox.models import SandboxFault
from sandbox.services import ActiveFaults, active_faults, authenticate, clear_faults, set_fault
from sandbox.services import create_sandbox_key as new_key

pytestmark = pytest.mark.django_db

Call = Callable[[str], Any]


@pytest.fixture
def call(client: Client) -> Call:
    def do(key: str) -> Any:
        return client.post(
            "/sandbox/character/list",
            content_type="application/json",
            headers={"CONVAI-API-KEY": key},
        )

    return do


def test_no_fault_by_default(call: Call) -> None:
    assert call(new_key("a")).status_code == 200


def test_outage_answers_503_html_to_everyone(call: Call) -> None:
    set_fault(outage=True)
    for key in (new_key("a"), "not-a-key", ""):
        response = call(key)
        assert response.status_code == 503
        assert response["Content-Type"].startswith("text/html")
        assert b"503 Service Temporarily Unavailable" in response.content


@pytest.mark.parametrize(("draw", "status"), [(0.49, 503), (0.5, 200), (0.9, 200)])
def test_failure_rate_answers_503_html_with_that_probability(
    call: Call, monkeypatch: pytest.MonkeyPatch, draw: float, status: int
) -> None:
    monkeypatch.setattr(views.random, "random", lambda: draw)
    set_fault(failure_rate=0.5)
    response = call(new_key("a"))
    assert response.status_code == status
    if status == 503:
        assert response["Content-Type"].startswith("text/html")


def test_rate_limit_answers_429_with_retry_after(call: Call) -> None:
    set_fault(rate_limit=True, retry_after=7)
    response = call(new_key("a"))
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert set(response.json()) == {"ERROR"}


def test_malformed_answers_an_unreadable_200(call: Call) -> None:
    set_fault(malformed=True)
    response = call(new_key("a"))
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_malformed_does_not_hide_an_invalid_key(call: Call) -> None:
    set_fault(malformed=True)
    assert call("f" * 32).status_code == 401


def test_latency_delays_the_answer(call: Call) -> None:
    set_fault(latency_ms=150)
    started = time.monotonic()
    assert call(new_key("a")).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_per_key_faults_apply_only_to_keys_with_that_label(call: Call) -> None:
    slow, fine = new_key("flaky"), new_key("steady")
    set_fault(key_label="flaky", outage=True)
    assert call(slow).status_code == 503
    assert call(fine).status_code == 200


def test_global_and_per_key_faults_merge_with_the_stronger_setting_winning() -> None:
    key = new_key("flaky")
    set_fault(latency_ms=100, failure_rate=0.1)
    set_fault(key_label="flaky", latency_ms=20, failure_rate=0.7, rate_limit=True, retry_after=3)
    assert active_faults(authenticate(key)) == ActiveFaults(
        latency_ms=100, failure_rate=0.7, rate_limit=True, retry_after=3
    )
    assert active_faults(authenticate(new_key("other"))) == ActiveFaults(
        latency_ms=100, failure_rate=0.1
    )


def test_set_replaces_and_clear_removes_a_scope(call: Call) -> None:
    key = new_key("a")
    set_fault(outage=True)
    set_fault(latency_ms=1)
    assert call(key).status_code == 200
    set_fault(key_label="a", rate_limit=True)
    assert clear_faults() == 1
    assert call(key).status_code == 429
    assert clear_faults(key_label="a") == 1
    assert call(key).status_code == 200


@pytest.mark.parametrize(
    "options", [{"failure_rate": 1.5}, {"failure_rate": -0.1}, {"latency_ms": -1}]
)
def test_invalid_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        set_fault(**options)  # type: ignore[arg-type]
    assert not SandboxFault.objects.exists()


def test_command_sets_shows_and_clears_faults(call: Call) -> None:
    key = new_key("demo")
    out = io.StringIO()
    call_command(
        "sandbox_fault",
        "set",
        "--key-label",
        "demo",
        "--rate-limit",
        "--retry-after",
        "5",
        stdout=out,
    )
    assert call(key).status_code == 429
    call_command("sandbox_fault", "set", "--latency-ms", "200", "--failure-rate", "0.5", stdout=out)
    call_command("sandbox_fault", "show", stdout=out)
    shown = out.getvalue()
    assert "demo: latency 0 ms, failure rate 0, rate limit (Retry-After 5 s)" in shown
    assert "(global): latency 200 ms, failure rate 0.5" in shown
    call_command("sandbox_fault", "clear", "--all", stdout=out)
    assert not SandboxFault.objects.exists()
    assert call(key).status_code == 200


def test_command_refuses_an_impossible_failure_rate() -> None:
    with pytest.raises(CommandError, match="failure_rate"):
        call_command("sandbox_fault", "set", "--failure-rate", "2", stdout=io.StringIO())
