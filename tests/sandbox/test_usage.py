"""`POST /user/user-api-usage` over raw HTTP: the shape api-notes.md describes, per account (not
per key), with the configured plan and quota, and one core-API unit spent per successful
character call."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from sandbox.services import clear_faults, configure_sandbox_account, create_sandbox_key, set_fault

RAYMOND = {"charName": "Raymond", "voiceType": "MALE", "backstory": "A criminal mastermind."}
METRIC_IDS = ["interactions", "core-api", "provider_pool_1", "pixel_streaming"]

Post = Callable[..., requests.Response]


@pytest.fixture
def post(sandbox_url: str) -> Post:
    def do(key: str | None, path: str = "/user/user-api-usage", payload: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["CONVAI-API-KEY"] = key
        body = json.dumps({} if payload is None else payload)
        return requests.post(sandbox_url + path, data=body, headers=headers, timeout=10)

    return do


def usage_of(post: Post, key: str) -> dict[str, Any]:
    response = post(key)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def core_api_used(post: Post, key: str) -> Any:
    metrics = usage_of(post, key)["usage_v2"]["metrics"]
    return next(m for m in metrics if m["id"] == "core-api")["usage_details"][0]["usage"]


def test_usage_has_the_documented_shape(post: Post, transactional_db: None) -> None:
    configure_sandbox_account(
        "studio",
        email="lead@studio.example.com",
        plan_name="Professional",
        renews_at=datetime(2030, 1, 31, 12, tzinfo=UTC),
        limits={"interactions": 5000},
        usage={"interactions": 120, "pixel_streaming": 3},
    )
    key = create_sandbox_key("writer", account="studio")
    response = post(key)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "application/json")
    body = response.json()
    assert body["usage"] == {"user_name": "studio", "email": "lead@studio.example.com"}
    plan = body["usage_v2"]
    assert set(plan) == {"plan_name", "expiry_ts", "metrics"}
    assert plan["plan_name"] == "Professional"
    assert datetime.fromisoformat(plan["expiry_ts"]) == datetime(2030, 1, 31, 12, tzinfo=UTC)
    assert [metric["id"] for metric in plan["metrics"]] == METRIC_IDS
    details = {metric["id"]: metric["usage_details"] for metric in plan["metrics"]}
    assert details["interactions"] == [{"limit": 5000, "usage": 120}]
    assert details["pixel_streaming"] == [{"limit": 60, "usage": 3}]


def test_usage_is_the_accounts_not_the_keys(post: Post, transactional_db: None) -> None:
    writer = create_sandbox_key("writer", account="studio")
    engineer = create_sandbox_key("engineer", account="studio")
    loner = create_sandbox_key("loner")
    assert usage_of(post, writer) == usage_of(post, engineer)
    assert usage_of(post, loner)["usage"]["user_name"] != "studio"
    assert post(writer, "/character/create", RAYMOND).status_code == 201
    assert core_api_used(post, engineer) == 1
    assert core_api_used(post, loner) == 0


def test_every_successful_character_call_spends_one_core_api_unit(
    post: Post, sandbox_key: str
) -> None:
    def spent(path: str, payload: Any, status: int = 200) -> int:
        before = core_api_used(post, sandbox_key)
        assert post(sandbox_key, path, payload).status_code == status
        return int(core_api_used(post, sandbox_key) - before)

    created = post(sandbox_key, "/character/create", RAYMOND).json()["charID"]
    assert spent("/character/create", RAYMOND, 201) == 1
    assert spent("/character/update", {"charID": created, "backstory": "New."}) == 1
    assert spent("/character/get", {"charID": created}) == 1
    assert spent("/character/list", {}) == 1
    clone = post(sandbox_key, "/user/clone_character", {"charID": created}).json()["charID"]
    assert spent("/character/delete", {"charID": clone}) == 1
    assert core_api_used(post, sandbox_key) == 7  # the clone counted too; usage reads did not


def test_failed_calls_and_other_endpoints_spend_nothing(
    post: Post, sandbox_key: str, sandbox_url: str
) -> None:
    post(sandbox_key, "/character/create", {"charName": "no voice"})
    post(sandbox_key, "/character/get", {"charID": "nope"})
    post(sandbox_key, "/character/delete", {"charID": "nope"})
    headers = {"CONVAI-API-KEY": sandbox_key}
    requests.get(f"{sandbox_url}/tts/get_available_voices", headers=headers, timeout=10)
    requests.get(f"{sandbox_url}/tts/get_available_languages", headers=headers, timeout=10)
    set_fault(malformed=True)
    post(sandbox_key, "/character/list", {})
    clear_faults()
    assert core_api_used(post, sandbox_key) == 0


def test_unknown_key_is_401_and_missing_key_is_400(post: Post, sandbox_key: str) -> None:
    unknown, missing = post("0" * 32), post(None)
    assert (unknown.status_code, unknown.json()) == (
        401,
        {"API_ERROR": "Invalid API key provided."},
    )
    assert (missing.status_code, missing.json()) == (400, {"API_ERROR": "api_key not found."})


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"outage": True}, 503), ({"rate_limit": True, "retry_after": 4}, 429)],
    ids=["outage", "rate-limit"],
)
def test_faults_apply_to_it(
    post: Post, sandbox_key: str, fault: dict[str, Any], status: int
) -> None:
    set_fault(**fault)
    assert post(sandbox_key).status_code == status


def test_malformed_fault_applies_to_it(post: Post, sandbox_key: str) -> None:
    set_fault(key_label="tests", malformed=True)
    response = post(sandbox_key)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
