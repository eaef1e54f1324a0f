"""A fake HTTP layer for what the sandbox cannot produce (resets, DNS failures, odd bodies):
a requests transport adapter mounted on the client's session, so everything above the socket
(the client's retries, parsing and error mapping) still runs for real."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]] | Exception


class FakeAdapter(BaseAdapter):
    """Answers each request with the next reply; records what was sent."""

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        status, body, *rest = reply
        response = requests.Response()
        response.status_code = status
        response.request = request
        response.url = request.url or ""
        response.headers = CaseInsensitiveDict(rest[0] if rest else {})
        if isinstance(body, bytes | str):
            response._content = body.encode() if isinstance(body, str) else body
        else:
            response._content = json.dumps(body).encode()
            response.headers.setdefault("Content-Type", "application/json")
        response._content_consumed = True  # as after a real, non-streamed read
        return response

    def close(self) -> None:
        pass

    def bodies(self) -> list[Any]:
        return [json.loads(r.body) if r.body else None for r in self.sent]


def install(monkeypatch: pytest.MonkeyPatch, replies: list[Reply]) -> FakeAdapter:
    """Route the client's pooled session through a FakeAdapter."""
    from convai import client as client_module

    adapter = FakeAdapter(replies)
    session = client_module.new_session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    factory: Callable[[], requests.Session] = lambda: session  # noqa: E731
    monkeypatch.setattr(client_module, "thread_session", factory)
    return adapter
