"""What the client puts on the wire and how tolerantly it reads answers the sandbox never
gives (fake transport: see fake_http.py)."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings
from django.core.cache import cache
from urllib3.exceptions import NameResolutionError

from convai.client import ConvaiClient
from convai.errors import (
    ConvaiAuthError,
    ConvaiProtocolError,
    ConvaiRateLimitError,
    ConvaiRequestError,
    ConvaiTimeoutError,
    ConvaiUnavailableError,
)
from tests.convai.fake_http import install

KEY = "k" * 32
BASE = "https://convai.test"
ITEM = {
    "character_id": "c-1",
    "character_name": "Raymond",
    "user_id": "u-1",
    "voice_type": "MALE",
    "timestamp": "2023-11-07T02:57:59",
    "backstory": "B.",
    "character_actions": "Wave, Sit",
    "language_code": "en-US",
    "model_details": {"modelType": "x"},
    "something_new": 42,
}


@pytest.fixture(autouse=True)
def _cache_in_memory(settings: object) -> None:
    """The client's catalogue cache without a database, empty for each test: these tests talk
    to a fake transport only (the product's cache is the database's, settings.CACHES)."""
    settings.CACHES = {  # type: ignore[attr-defined]
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
    cache.clear()


def client(**options: object) -> ConvaiClient:
    return ConvaiClient(KEY, base_url=BASE, backoff=0, **options)  # type: ignore[arg-type]


# --- requests as documented -------------------------------------------------------------------


def test_every_call_carries_the_key_header_and_a_product_user_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = install(monkeypatch, [(200, {"characters": []})])
    client().list_characters()
    sent = fake.sent[0]
    assert sent.headers["CONVAI-API-KEY"] == KEY
    assert sent.headers["User-Agent"].startswith(f"ConvaiAdmin/{settings.VERSION} ")
    assert (sent.method, sent.url) == ("POST", f"{BASE}/character/list")
    assert fake.bodies() == [{}]


def test_create_sends_the_documented_fields_with_actions_as_a_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = install(monkeypatch, [(201, {"charID": "new"})])
    assert client().create_character("Raymond", "US MALE 1", "B.", actions=["Wave", "Sit"]) == "new"
    assert fake.sent[0].url == f"{BASE}/character/create"
    assert fake.sent[0].headers["Content-Type"] == "application/json"
    assert fake.bodies() == [
        {"charName": "Raymond", "voiceType": "US MALE 1", "backstory": "B.", "actions": "Wave, Sit"}
    ]


def test_update_sends_only_the_fields_given_with_singular_action(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = install(monkeypatch, [(200, {"STATUS": "SUCCESS"})])
    client().update_character("c-1", backstory="New.")
    client().update_character("c-1", actions=["Jump"], language_codes=["ar", "zh-HK"])
    assert fake.bodies() == [
        {"charID": "c-1", "backstory": "New."},
        {"charID": "c-1", "action": "Jump", "languageCodes": ["ar", "zh-HK"]},
    ]


def test_get_clone_delete_bodies_and_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(
        monkeypatch,
        [(200, ITEM), (200, ITEM), (200, {"charID": "copy"}), (200, {"STATUS": "SUCCESS"})],
    )
    client().get_character("c-1")
    client().get_character(name="Raymond")
    assert client().clone_character("c-1", include_kb=True) == "copy"
    client().delete_character("c-1")
    assert [r.url for r in fake.sent] == [
        f"{BASE}/character/get",
        f"{BASE}/character/get",
        f"{BASE}/user/clone_character",
        f"{BASE}/character/delete",
    ]
    assert fake.bodies() == [
        {"charID": "c-1"},
        {"charName": "Raymond"},
        {"charID": "c-1", "KB": True},
        {"charID": "c-1"},
    ]


def test_catalogues_are_gets_without_a_body(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, [(200, {}), (200, [])])
    assert client().list_voices() == []
    assert client().list_languages() == []
    assert [(r.method, r.url, r.body) for r in fake.sent] == [
        ("GET", f"{BASE}/tts/get_available_voices", None),
        ("GET", f"{BASE}/tts/get_available_languages", None),
    ]


# --- tolerant reading -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202])
def test_create_accepts_any_2xx(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    install(monkeypatch, [(status, {"charID": 123, "extra": True})])
    assert client().create_character("R", "MALE", "B.") == "123"


@pytest.mark.parametrize("payload", [ITEM, {"response": ITEM}])
def test_get_accepts_bare_and_wrapped_payloads(
    monkeypatch: pytest.MonkeyPatch, payload: dict[str, object]
) -> None:
    install(monkeypatch, [(200, payload)])
    details = client().get_character("c-1")
    assert details.character_id == "c-1"
    assert details.actions == ["Wave", "Sit"]
    assert details.language_codes == ["en-US"]
    assert details.raw["something_new"] == 42


def test_list_keeps_unknown_fields_and_accepts_a_bare_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = {k: v for k, v in ITEM.items() if k != "backstory"}
    install(monkeypatch, [(200, [item])])
    [details] = client().list_characters()
    assert details.backstory is None
    assert details.raw["model_details"] == {"modelType": "x"}


def test_unreadable_voice_entries_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = {
        "Azure Voices": [
            {"Ada": {"voice_value": "AZ-1", "lang_codes": ["en-US"], "gender": "FEMALE"}},
            {"Broken": {"gender": "MALE"}},
            "junk",
        ],
        "Notes": "not a list",
    }
    install(monkeypatch, [(200, payload)])
    assert [v.voice_value for v in client().list_voices()] == ["AZ-1"]


@pytest.mark.parametrize("method", ["update_character", "delete_character"])
def test_an_empty_2xx_body_is_success_for_update_and_delete(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    fake = install(monkeypatch, [(200, b"")])
    if method == "update_character":
        client().update_character("c-1", name="X")
    else:
        client().delete_character("c-1")
    # No exception, and exactly one request went out (a write is never retried).
    assert len(fake.sent) == 1


# --- failures the sandbox cannot produce ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"ERROR": "Could not update all_characters table."}, ConvaiRequestError),
        ({"INTERNAL_ERROR": "Boom", "Reference ID": "r-1"}, ConvaiRequestError),
        ({"API_ERROR": "Invalid API key provided."}, ConvaiAuthError),
    ],
)
def test_an_error_key_inside_a_2xx_body_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, body: dict[str, str], error: type[Exception]
) -> None:
    install(monkeypatch, [(200, body)])
    with pytest.raises(error):
        client().update_character("c-1", name="X")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((200, {"characters": "nope"}), ConvaiProtocolError),
        ((200, {"characters": [{"character_name": "no id"}]}), ConvaiProtocolError),
        ((302, b"", {"Location": "https://elsewhere.test/"}), ConvaiProtocolError),
        ((403, {"ERROR": "Forbidden"}), ConvaiRequestError),
        ((404, b"<html>Not Found</html>"), ConvaiRequestError),
        ((502, b"<html>Bad Gateway</html>"), ConvaiUnavailableError),
        ((500, {"INTERNAL_ERROR": "x"}), ConvaiUnavailableError),
    ],
)
def test_status_classification(
    monkeypatch: pytest.MonkeyPatch, reply: tuple[int, object], error: type[Exception]
) -> None:
    install(monkeypatch, [reply])
    with pytest.raises(error):
        client(read_retries=0).list_characters()


def test_create_without_a_char_id_is_a_protocol_error(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [(201, {"status": "ok"})])
    with pytest.raises(ConvaiProtocolError):
        client().create_character("R", "MALE", "B.")


def test_retry_after_as_an_http_date(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [(429, {}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})])
    with pytest.raises(ConvaiRateLimitError) as caught:
        client().create_character("R", "MALE", "B.")
    assert caught.value.retry_after == 0.0


def test_rate_limit_without_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [(429, {"ERROR": "slow down"})])
    with pytest.raises(ConvaiRateLimitError) as caught:
        client().create_character("R", "MALE", "B.")
    assert caught.value.retry_after is None
    assert "shortly" in caught.value.message


def dns_failure() -> requests.ConnectionError:
    return requests.ConnectionError(
        NameResolutionError("convai.test", None, OSError("Name or service not known"))  # type: ignore[arg-type]
    )


def reset() -> requests.ConnectionError:
    return requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))


@pytest.mark.parametrize("failure", [dns_failure, reset, requests.ConnectTimeout])
def test_connection_failures_are_unavailable_and_retried_for_reads(
    monkeypatch: pytest.MonkeyPatch, failure: type[Exception]
) -> None:
    fake = install(monkeypatch, [failure()])
    with pytest.raises(ConvaiUnavailableError) as caught:
        client(read_retries=2).get_character("c-1")
    assert not isinstance(caught.value, ConvaiTimeoutError)
    assert len(fake.sent) == 3


@pytest.mark.parametrize("failure", [dns_failure, reset])
def test_connection_failures_are_not_retried_for_writes(
    monkeypatch: pytest.MonkeyPatch, failure: type[Exception]
) -> None:
    fake = install(monkeypatch, [failure()])
    with pytest.raises(ConvaiUnavailableError):
        client(read_retries=2).clone_character("c-1")
    assert len(fake.sent) == 1


def test_a_read_recovers_after_a_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, [reset(), (200, ITEM)])
    assert client(read_retries=2).get_character("c-1").character_id == "c-1"
    assert len(fake.sent) == 2


def test_a_read_timeout_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, [requests.ReadTimeout()])
    with pytest.raises(ConvaiTimeoutError):
        client(read_retries=2).list_characters()
    assert len(fake.sent) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_for_reads(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    fake = install(monkeypatch, [(status, b"<html>down</html>"), (200, {"characters": []})])
    assert client(read_retries=1).list_characters() == []
    assert len(fake.sent) == 2


def test_timeouts_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client().timeout == (settings.CONVAI_CONNECT_TIMEOUT, settings.CONVAI_READ_TIMEOUT)
    assert ConvaiClient(KEY).base_url == settings.CONVAI_API_BASE_URL


# --- the session ------------------------------------------------------------------------------


def test_a_session_handed_in_is_used_for_every_call_and_left_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller owns it (a benchmark's per-call connections, a test's transport): the client
    neither closes it nor falls back to the thread's pooled session."""
    from convai import client as client_module
    from tests.convai.fake_http import FakeAdapter

    def no_pooled_session() -> requests.Session:
        raise AssertionError("the pooled session was used")

    monkeypatch.setattr(client_module, "thread_session", no_pooled_session)
    adapter = FakeAdapter([(200, {"characters": []})])
    session = client_module.new_session()
    session.mount("https://", adapter)
    closed: list[bool] = []
    monkeypatch.setattr(session, "close", lambda: closed.append(True))
    convai = ConvaiClient(KEY, base_url=BASE, session=session)
    convai.list_characters()
    convai.get_account_usage()
    assert [request.url for request in adapter.sent] == [
        f"{BASE}/character/list",
        f"{BASE}/user/user-api-usage",
    ]
    assert adapter.sent[0].headers["User-Agent"].startswith("ConvaiAdmin/")
    assert closed == []
