"""Leak checks shared by the key, character and browser tests: a raw API key (or any
8-character run of it) must reach no page, log, audit event or exception message."""

from __future__ import annotations

import json

from audit.models import AuditEvent


def assert_secret_absent(text: str, secret: str) -> None:
    """Neither the key nor any 8-character run of it appears in `text`."""
    assert secret not in text
    for start in range(len(secret) - 7):
        assert secret[start : start + 8] not in text, "a run of the key leaked"


def audit_text() -> str:
    """Every audit event's action, target, actor label and details, as one string to search."""
    return json.dumps(
        [
            [e.action, e.target_id, e.target_label, e.actor_label, e.details]
            for e in AuditEvent.objects.all()
        ]
    )
