"""The web server `make run` serves with: Django's development server (`runserver`), bounded
so that a slow or lying client cannot hold a thread for long.

Django's server waits without limit for a client to send what it announced, and after
answering it reads whatever body nobody read, to its announced end, to keep the connection
usable. A client that announces 10 MB and sends 10 bytes, or a browser's idle keep-alive
connection, then holds a thread forever; a refused 200 MB upload is still read in full. Here
every read waits at most settings.REQUEST_READ_TIMEOUT seconds, an idle or stalled connection
is closed quietly, and at most DRAIN_LIMIT bytes of an unread body are skipped before the
connection is closed instead. Production servers (gunicorn, nginx in front) have their own
timeouts: see README, "Request limits and slow clients"."""

from __future__ import annotations

import logging
import socket
from typing import Any
from wsgiref import simple_server

from django.conf import settings
from django.core.servers.basehttp import ServerHandler, WSGIRequestHandler, WSGIServer

logger = logging.getLogger("django.server")

# An unread body up to this size is skipped so the connection can serve another request;
# beyond it, the connection is closed instead of reading on.
DRAIN_LIMIT = 256 * 1024
_CHUNK = 64 * 1024


class BoundedServerHandler(ServerHandler):
    request_handler: WSGIRequestHandler  # set by the request handler, as Django's does

    def close(self) -> None:
        """Skip what is left of the request's body (Django's own handler reads all of it, as
        long as it takes): a little, under the read timeout, else give up the connection."""
        stdin = self.get_stdin()
        skipped = 0
        try:
            while chunk := stdin.read(_CHUNK):
                skipped += len(chunk)
                if skipped >= DRAIN_LIMIT:
                    self.request_handler.close_connection = True
                    break
        except OSError:  # timed out, or the client went away
            self.request_handler.close_connection = True
        simple_server.ServerHandler.close(self)


class BoundedRequestHandler(WSGIRequestHandler):
    request_handler_class = BoundedServerHandler

    def handle_one_request(self) -> None:
        try:
            self._handle_one_request()
        except TimeoutError:
            # An idle keep-alive connection, or a client that stopped sending its request:
            # not an error worth a traceback. The thread is free again.
            logger.debug("Closed a connection from %s that went quiet", self.client_address[0])
            self.close_connection = True

    def _handle_one_request(self) -> None:
        """Django's WSGIRequestHandler.handle_one_request, with BoundedServerHandler."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = BoundedServerHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ()
        )
        handler.request_handler = self
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


class ReadTimeoutMixin:
    """Serve every connection with BoundedRequestHandler, its socket reads bounded by
    settings.REQUEST_READ_TIMEOUT."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        assert isinstance(request, socket.socket)  # a TCP server's connection
        request.settimeout(float(settings.REQUEST_READ_TIMEOUT))
        BoundedRequestHandler(request, client_address, self)  # type: ignore[arg-type]


class BoundedWSGIServer(ReadTimeoutMixin, WSGIServer):
    """runserver's server class (it adds ThreadingMixIn itself)."""
