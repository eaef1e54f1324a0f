"""EMAIL_URL is parsed into Django's email settings, and the in-process SMTP server that tests
read mail from receives what Django's SMTP backend sends."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured

from convai_admin.mailconfig import DISABLED_BACKEND, mail_settings
from tests.support.smtp import SMTPServer

SMTP = "django.core.mail.backends.smtp.EmailBackend"


def test_unset_sends_nothing() -> None:
    parsed = mail_settings("")
    assert (parsed.backend, parsed.enabled) == (DISABLED_BACKEND, False)


def test_starttls_with_credentials() -> None:
    parsed = mail_settings("smtp://mailer:p%40ss@mail.example.test:587/?tls=1")
    assert (parsed.backend, parsed.host, parsed.port) == (SMTP, "mail.example.test", 587)
    assert (parsed.user, parsed.password) == ("mailer", "p@ss")
    assert (parsed.use_tls, parsed.use_ssl, parsed.enabled) == (True, False, True)


@pytest.mark.parametrize("url", ["smtps://mail.example.test", "smtp+ssl://mail.example.test"])
def test_implicit_tls(url: str) -> None:
    parsed = mail_settings(url)
    assert (parsed.port, parsed.use_ssl, parsed.use_tls) == (465, True, False)


def test_plain_smtp_and_timeout() -> None:
    parsed = mail_settings("smtp://127.0.0.1:2525/?timeout=3")
    assert (parsed.port, parsed.use_tls, parsed.use_ssl, parsed.timeout) == (2525, False, False, 3)


def test_console() -> None:
    assert mail_settings("console://").backend == "django.core.mail.backends.console.EmailBackend"


@pytest.mark.parametrize("url", ["gopher://x", "mail.example.test"])
def test_unknown_scheme_is_refused_without_echoing_secrets(url: str) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        mail_settings(url.replace("x", "u:hunter2@x"))
    assert "hunter2" not in str(raised.value)


def test_the_test_smtp_server_receives_django_mail(smtp_server: SMTPServer) -> None:
    sent = mail.send_mail("Hello", "Body text", None, ["sam@example.test"])
    assert sent == 1
    [message] = smtp_server.messages
    assert message["Subject"] == "Hello"
    assert smtp_server.body(message).strip() == "Body text"
    assert smtp_server.recipients() == [["sam@example.test"]]


def test_the_test_smtp_server_can_refuse(smtp_server: SMTPServer) -> None:
    smtp_server.refuse = True
    with pytest.raises(Exception, match="Refused"):
        mail.send_mail("Hello", "Body", None, ["sam@example.test"])
    assert smtp_server.messages == []
