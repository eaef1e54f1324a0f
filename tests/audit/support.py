"""Helpers of the audit review tests: the log page's URL with filters, and events to page
through."""

from __future__ import annotations

from django.urls import reverse

from audit.models import AuditEvent, Outcome
from audit.services import record
from tests.factories import UserFactory


def log_url(team, **params) -> str:
    from urllib.parse import urlencode

    url = reverse("audit:log", args=[team.slug])
    return f"{url}?{urlencode(params)}" if params else url


def seed(team, n: int, **kwargs) -> list[AuditEvent]:
    user = kwargs.pop("actor", None) or UserFactory.create()
    return [
        record(
            kwargs.get("action", "character.update"),
            actor=user,
            team=team,
            target_type=kwargs.get("target_type", "character"),
            target_id=kwargs.get("target_id", f"cid-{i}"),
            target_label=kwargs.get("label", f"Character {i}"),
            outcome=kwargs.get("outcome", Outcome.SUCCESS),
            details={"changes": {"name": [f"old {i}", f"new {i}"]}, "key_used": "Main (…abcd)"},
        )
        for i in range(n)
    ]
