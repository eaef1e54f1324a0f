"""A client that announces a body and then sends less (or nothing), or keeps a connection open
and silent, must not hold a server thread for long: the server `make run` serves with (our
`runserver`, convai_admin.server) reads under REQUEST_READ_TIMEOUT and never waits for, or
swallows, more than a little of a body nobody read.

Raw sockets against a live server running that server class; every wait is bounded by the
client socket's timeout (a hang fails the test, it does not stall it)."""

from __future__ import annotations

import socket
import socketserver
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management import get_commands, load_command_class
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread

from convai_admin.server import BoundedWSGIServer, ReadTimeoutMixin

CSRF = "a" * 32
SERVER_TIMEOUT = 0.5
CLIENT_TIMEOUT = 5.0  # the bound: ten times the server's timeout, far below "forever"


class BoundedThreadedServer(ReadTimeoutMixin, ThreadedWSGIServer):
    """What runserver builds from BoundedWSGIServer (plus ThreadingMixIn), with the live
    server's database connection sharing."""


class BoundedLiveServerThread(LiveServerThread):
    server_class = BoundedThreadedServer


@pytest.fixture
def server(settings: Any) -> Iterator[tuple[str, int]]:
    settings.REQUEST_READ_TIMEOUT = SERVER_TIMEOUT
    thread = BoundedLiveServerThread("127.0.0.1", StaticFilesHandler)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield thread.host, thread.port
    thread.terminate()


def connect(server: tuple[str, int]) -> socket.socket:
    return socket.create_connection(server, timeout=CLIENT_TIMEOUT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it
    does not close within CLIENT_TIMEOUT)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def post_head(path: str, length: int, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nCookie: csrftoken={CSRF}\r\n\r\n"
    ).encode()


@pytest.mark.django_db(transaction=True)
def test_a_body_announced_and_never_finished_gets_an_answer_and_a_close(
    server: tuple[str, int],
) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(post_head("/accounts/login/", 500, "application/x-www-form-urlencoded"))
        sock.sendall(b"username=sam&pass")  # and then nothing more
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 4")  # refused: the form could not be read
    assert waited < CLIENT_TIMEOUT


@pytest.mark.django_db(transaction=True)
def test_after_a_413_the_server_does_not_wait_for_the_rest_of_the_body(
    server: tuple[str, int],
) -> None:
    """Refused on Content-Length at once; the thread then neither reads 200 MB nor waits for
    them: it closes the connection."""
    with connect(server) as sock:
        sock.sendall(
            post_head("/t/any/characters/bundles/import/", 200 * 1024 * 1024, "multipart/form-data")
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.django_db(transaction=True)
def test_a_client_that_keeps_sending_a_refused_body_is_cut_off(
    server: tuple[str, int],
) -> None:
    """It is not read to its announced end (200 MB swallowed to keep the connection): after
    a little, the connection is closed."""
    with connect(server) as sock:
        sock.sendall(
            post_head("/t/any/characters/bundles/import/", 200 * 1024 * 1024, "multipart/form-data")
        )
        sent = 0
        with pytest.raises(OSError):  # reset or broken pipe once the server has closed
            while sent < 50 * 1024 * 1024:
                sock.sendall(b"x" * 65536)
                sent += 65536
        assert sent < 50 * 1024 * 1024


@pytest.mark.django_db(transaction=True)
def test_an_idle_connection_is_closed_quietly(
    server: tuple[str, int], capfd: pytest.CaptureFixture[str]
) -> None:
    with connect(server) as sock:
        assert read_until_closed(sock) == b""
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_keep_alive_still_works_for_clients_that_send_what_they_announce(
    server: tuple[str, int],
) -> None:
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            received = b""
            while b"</html>" not in received:
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200")


def test_runserver_serves_with_the_bounded_server_and_whitenoise_still_serves_static() -> None:
    command = load_command_class(get_commands()["runserver"], "runserver")
    assert issubclass(command.server_cls, BoundedWSGIServer)
    assert not issubclass(command.server_cls, socketserver.ThreadingMixIn)  # run() adds it
    parser = command.create_parser("manage.py", "runserver")
    assert parser.get_default("use_static_handler") is False  # whitenoise.runserver_nostatic
