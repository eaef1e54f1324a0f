"""A real SMTP server in the test process (aiosmtpd), on a free loopback port, that keeps what
it receives: tests send through Django's SMTP backend, as production does, and read the mail.

Use the `smtp_server` fixture (registered for every test package in tests/conftest.py):

    def test_invitation_mail(smtp_server, ...):
        ...  # something that sends mail
        [mail] = smtp_server.messages
        assert mail["To"] == "sam@example.test"
        assert "/invitations/" in smtp_server.body(mail)

Settings point EMAIL_* at the server for the test (`EMAIL_ENABLED` on). A message is stored
before the server answers the end of its DATA, so it is there when `send_mail` returns: no
waiting. `smtp_server.refuse = True` makes the server answer every message with a 554, for
the "sending failed" paths.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _Collector:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.refuse = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            return "554 5.7.1 Refused by the test server"
        content = envelope.original_content or b""
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


class _LoopbackController(Controller):
    """Binds 127.0.0.1 on a port the kernel picks (no guessing, no race with other workers)."""

    def __init__(self, handler: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._socket.getsockname()[1])

    def _create_server(self) -> Awaitable[Any]:
        return self.loop.create_server(self._factory_invoker, sock=self._socket)


class SMTPServer:
    def __init__(self, collector: _Collector, host: str, port: int) -> None:
        self._collector = collector
        self.host = host
        self.port = port

    @property
    def messages(self) -> list[EmailMessage]:
        return self._collector.messages

    @property
    def refuse(self) -> bool:
        return self._collector.refuse

    @refuse.setter
    def refuse(self, value: bool) -> None:
        self._collector.refuse = value

    def recipients(self) -> list[list[str]]:
        return [list(envelope.rcpt_tos) for envelope in self._collector.envelopes]

    @staticmethod
    def body(message: EmailMessage) -> str:
        """The plain-text body (the text/plain part of a multipart mail)."""
        part = message.get_body(preferencelist=("plain",))
        assert part is not None, "the mail has no text/plain part"
        return str(part.get_content())  # type: ignore[attr-defined]


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[SMTPServer]:
    collector = _Collector()
    controller = _LoopbackController(collector)
    controller.start()
    settings.EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = controller.hostname
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    try:
        yield SMTPServer(collector, controller.hostname, controller.port)
    finally:
        controller.stop()
