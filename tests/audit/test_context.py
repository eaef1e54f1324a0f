"""Where an audit event comes from reaches the recorder through the audit context, never as an
argument: middleware sets it per request (IP, user agent, request ID), commands set their own
origin, and outside both the fields stay empty."""

from __future__ import annotations

import base64
import os
import secrets
import threading

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from audit.context import AuditContext, audit_context, current
from audit.models import AuditEvent, Outcome
from audit.services import record
from keys.services import add_api_key
from teams.models import Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

IP = "198.51.100.23"
AGENT = "ContextTest/2.0 (audit)"
REQUEST_ID = "trace-0123456789"


def where(event: AuditEvent) -> tuple[str | None, str, str, str]:
    event.refresh_from_db()
    return (event.ip_address, event.user_agent, event.request_id, event.origin)


def test_a_service_called_by_a_view_records_the_requests_context(client: Client) -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    client.force_login(owner.user)
    response = client.post(
        reverse("teams:settings", args=[owner.team.slug]),
        {"name": "Context Studio"},
        REMOTE_ADDR=IP,
        HTTP_USER_AGENT=AGENT,
        HTTP_X_REQUEST_ID=REQUEST_ID,
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="team.renamed")
    assert where(event) == (IP, AGENT, REQUEST_ID, "web")


def test_a_fresh_request_id_is_the_one_the_response_carries(client: Client) -> None:
    owner = MembershipFactory.create(role=Role.OWNER)
    client.force_login(owner.user)
    response = client.post(
        reverse("teams:settings", args=[owner.team.slug]), {"name": "Another name"}
    )
    event = AuditEvent.objects.get(action="team.renamed")
    assert event.request_id == response["X-Request-ID"]
    assert len(event.request_id) == 32


def test_a_refusal_at_the_door_carries_the_context_too(client: Client) -> None:
    viewer = MembershipFactory.create(role=Role.VIEWER)
    client.force_login(viewer.user)
    response = client.get(
        reverse("teams:settings", args=[viewer.team.slug]),
        REMOTE_ADDR=IP,
        HTTP_USER_AGENT=AGENT,
        HTTP_X_REQUEST_ID=REQUEST_ID,
    )
    assert response.status_code == 403
    event = AuditEvent.objects.get(outcome=Outcome.DENIED)
    assert where(event) == (IP, AGENT, REQUEST_ID, "web")


def test_a_commands_events_carry_its_origin(settings) -> None:
    old = f"old:{base64.b64encode(os.urandom(32)).decode()}"
    new = f"new:{base64.b64encode(os.urandom(32)).decode()}"
    settings.ENCRYPTION_KEYS = old
    add_api_key(
        actor=UserFactory.create(),
        label="to rotate",
        raw_key=secrets.token_hex(16),
        skip_verification=True,
    )
    settings.ENCRYPTION_KEYS = f"{new},{old}"
    call_command("rotate_encryption_keys")
    event = AuditEvent.objects.get(action="encryption.rotate")
    assert where(event) == (None, "", "", "command rotate_encryption_keys")
    assert current() == AuditContext()  # the command left no context behind


def test_outside_any_context_the_fields_are_empty() -> None:
    event = record("team.renamed", actor=UserFactory.create())
    assert where(event) == (None, "", "", "")


def test_contexts_nest_and_are_restored() -> None:
    with audit_context(origin="command outer", ip_address="192.0.2.1"):
        with audit_context(origin="task inner #7"):
            inner = record("job.started")
        outer = record("job.finished")
    after = record("job.cleanup")
    assert where(inner) == (None, "", "", "task inner #7")
    assert where(outer) == ("192.0.2.1", "", "", "command outer")
    assert where(after) == (None, "", "", "")


def test_a_request_leaves_no_context_behind(client: Client) -> None:
    client.get(reverse("accounts:login"), REMOTE_ADDR=IP, HTTP_USER_AGENT=AGENT)
    assert where(record("after.request")) == (None, "", "", "")


def test_another_thread_does_not_see_this_threads_context() -> None:
    seen: list[str] = []
    with audit_context(origin="command here"):
        thread = threading.Thread(target=lambda: seen.append(current().origin))
        thread.start()
        thread.join()
    assert seen == [""]
