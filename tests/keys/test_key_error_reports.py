"""A crash in code that holds a Convai API key (the client's transport, sealing a key) must not
print the key into the error report Django mails to ADMINS, whoever called that code: the
report lists every frame's local variables."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from django.views.debug import ExceptionReporter

from convai.client import ConvaiClient
from convai_admin import encryption
from keys import services as key_services
from keys.models import ApiKey
from tests.convai.fake_http import install
from tests.factories import UserFactory

KEY = "k3y" + "0123456789abcdef0123456789abc"


def report_of(crash: Callable[[], object]) -> list[str]:
    """Run `crash` from a plain function (no view or service above it hides anything) and
    return the text and HTML error reports of what it raised."""
    try:
        crash()
    except RuntimeError:
        reporter = ExceptionReporter(None, *sys.exc_info())
        return [reporter.get_traceback_text(), reporter.get_traceback_html()]
    raise AssertionError("expected a crash")


def test_a_crash_inside_the_transport_leaks_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [RuntimeError("adapter bug")])
    convai = ConvaiClient(KEY, base_url="https://convai.test", read_retries=0)
    reports = report_of(convai.list_characters)
    assert "adapter bug" in reports[0] and "_send" in reports[0]
    for text in reports:
        assert KEY not in text


@pytest.mark.django_db
def test_a_crash_while_sealing_a_key_leaks_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenCipher:
        def __init__(self, key: bytes) -> None:
            pass

        def encrypt(self, *args: object) -> bytes:
            raise RuntimeError("cipher bug")

    monkeypatch.setattr(encryption, "AESGCM", BrokenCipher)
    api_key = ApiKey(owner=UserFactory.create(), label="L", last_four=KEY[-4:])
    reports = report_of(lambda: key_services.seal(api_key, KEY))
    assert "cipher bug" in reports[0] and "seal" in reports[0]
    for text in reports:
        assert KEY not in text
