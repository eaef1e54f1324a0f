"""The request ID ties an audit event to the server log: the event stores it, and the log lines
written while that request runs carry it (convai_admin.middleware.RequestIDLogFilter on the
console handler, `[%(request_id)s]` in its format)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.test import Client

from audit.models import AuditEvent
from convai_admin.middleware import RequestIDLogFilter


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """What the configured console handler writes (settings.LOGGING), captured."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler)
        and any(isinstance(f, RequestIDLogFilter) for f in h.filters)
    ]
    assert handlers, "settings.LOGGING's console handler (with the request ID filter) is gone"
    handler = handlers[0]
    captured = io.StringIO()
    previous = handler.setStream(captured)
    try:
        yield captured
    finally:
        handler.setStream(previous)


# A real commit, so the checkpoint line (written on commit) is logged inside the request.
@pytest.mark.django_db(transaction=True)
def test_a_log_line_written_during_a_request_carries_its_request_id(
    client: Client, server_log: io.StringIO, settings
) -> None:
    settings.AUDIT_CHECKPOINT_EVERY = 1  # every event writes a checkpoint line to the log
    response = client.post(
        "/accounts/login/",
        {"login": "nobody", "password": "wrong"},
        HTTP_X_REQUEST_ID="req-audit-0001",
    )
    assert response["X-Request-ID"] == "req-audit-0001"
    event = AuditEvent.objects.order_by("-id").first()
    assert event is not None and event.request_id == "req-audit-0001"
    lines = [line for line in server_log.getvalue().splitlines() if "AUDIT-CHECKPOINT" in line]
    assert lines, server_log.getvalue()
    assert all("[req-audit-0001]" in line for line in lines)


def test_a_log_line_outside_any_request_says_so(server_log: io.StringIO) -> None:
    logging.getLogger("convai_admin.audit.checkpoint").warning("outside")
    assert "[-] outside" in server_log.getvalue()
