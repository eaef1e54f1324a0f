"""The API key never reaches a log line, an exception message or a cache key."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from convai.client import ConvaiClient
from convai.errors import ConvaiAuthError, ConvaiError
from sandbox.services import clear_faults, set_fault
from tests.convai.fake_http import install

MakeClient = Callable[..., ConvaiClient]


def collect_errors(convai: ConvaiClient) -> list[ConvaiError]:
    errors: list[ConvaiError] = []
    for call in (
        lambda: convai.get_character("no-such-character"),
        lambda: convai.update_character("no-such-character", name="X"),
        lambda: convai.create_character("", "MALE", "B"),
        lambda: convai.list_characters(),
    ):
        try:
            call()
        except ConvaiError as error:
            errors.append(error)
    return errors


def test_key_never_appears_in_debug_logs(
    make_client: MakeClient, sandbox_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    convai = make_client(sandbox_key, read_retries=1)
    with caplog.at_level(logging.DEBUG, logger="convai_admin.convai"):
        char_id = convai.create_character("R", "MALE", "B", actions=["Wave"])
        convai.get_character(char_id)
        convai.list_voices()
        collect_errors(convai)
        set_fault(outage=True)
        collect_errors(convai)
        clear_faults()
    messages = [record.getMessage() for record in caplog.records]
    assert any("POST /sandbox/character/create -> 201" in m for m in messages)
    assert any("GET /sandbox/tts/get_available_voices -> 200" in m for m in messages)
    assert any("retry" in m for m in messages)
    assert sandbox_key not in caplog.text
    assert all(sandbox_key not in repr(record.args) for record in caplog.records)


@pytest.mark.parametrize("fault", [{}, {"outage": True}, {"rate_limit": True}, {"malformed": True}])
def test_key_never_appears_in_exceptions(
    make_client: MakeClient, sandbox_key: str, fault: dict[str, bool]
) -> None:
    set_fault(**fault)  # type: ignore[arg-type]
    convai = make_client(sandbox_key, read_retries=0)
    errors = collect_errors(convai) + collect_errors(make_client("0" * 32, read_retries=0))
    assert errors
    for error in errors:
        text = f"{error} {error.message} {error.remote_message} {error!r} {error.args}"
        assert sandbox_key not in text
        assert error.__cause__ is None or sandbox_key not in str(error.__cause__)
    assert sandbox_key not in repr(convai)


def test_a_remote_message_echoing_the_key_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "e" * 32
    install(monkeypatch, [(400, {"ERROR": f"Key {key} has no such character"})])
    with pytest.raises(ConvaiError) as caught:
        ConvaiClient(key, base_url="https://convai.test").delete_character("c-1")
    assert key not in str(caught.value)
    assert key not in caught.value.remote_message
    assert "[redacted]" in caught.value.message


def test_transport_errors_hide_their_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    key = "f" * 32
    install(monkeypatch, [requests.ConnectionError(f"failed with header {key}")])
    with pytest.raises(ConvaiError) as caught:
        ConvaiClient(key, base_url="https://convai.test", read_retries=0).list_characters()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert key not in str(caught.value)


@pytest.mark.parametrize("key", ["abc\ndef", "caf\u00e9-key", "key\u2019s"])
def test_a_key_no_header_can_carry_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    fake = install(monkeypatch, [(200, {"characters": []})])
    with pytest.raises(ConvaiError) as caught:
        ConvaiClient(key, base_url="https://convai.test").list_characters()
    assert isinstance(caught.value, ConvaiAuthError)
    assert key not in str(caught.value)
    assert fake.sent == []
