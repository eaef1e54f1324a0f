"""The audit recorder: a chain per team, names frozen, append-only through the ORM."""

from __future__ import annotations

import pytest

from audit.context import audit_context
from audit.models import AuditEvent, Outcome
from audit.services import chain_scope, record, verify_chain
from tests.audit.tampering import set_column
from tests.factories import TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_events_chain_per_team_and_verify_clean() -> None:
    team_a, team_b = TeamFactory(), TeamFactory()
    user = UserFactory(first_name="Ada", last_name="Lovelace")
    for i in range(3):
        record("team.renamed", actor=user, team=team_a, details={"i": i})
    record("team.renamed", actor=user, team=team_b)
    a_events = list(AuditEvent.objects.filter(team=team_a).order_by("seq"))
    assert [e.seq for e in a_events] == [1, 2, 3]
    assert a_events[0].prev_hash == "0" * 64
    assert a_events[1].prev_hash == a_events[0].hash
    assert AuditEvent.objects.get(team=team_b).seq == 1
    assert verify_chain(chain_scope(team_a)) == []
    assert verify_chain(chain_scope(team_b)) == []
    assert a_events[0].actor_label == "Ada Lovelace"


def test_actor_name_is_frozen_at_the_time() -> None:
    user = UserFactory(first_name="Old", last_name="Name")
    event = record("auth.sign_in", actor=user)
    user.first_name = "New"
    user.save()
    event.refresh_from_db()
    assert event.actor_label == "Old Name"


# Tampering of every kind: tests/audit/test_tamper_evidence.py.


def test_events_cannot_be_updated_or_deleted_through_the_orm() -> None:
    event = record("auth.sign_in")
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_secret_looking_details_are_redacted() -> None:
    event = record(
        "api_key.added",
        details={"label": "prod", "key": "sk-live-123", "nested": {"password": "hunter22"}},
    )
    event.refresh_from_db()
    assert event.details == {
        "label": "prod",
        "key": "[redacted]",
        "nested": {"password": "[redacted]"},
    }


def test_the_audit_context_is_captured_and_covered_by_the_hash() -> None:
    """Where an event came from is read from the audit context, not passed in (see
    tests/audit/test_context.py for requests and commands)."""
    with audit_context(
        origin="web",
        ip_address="203.0.113.7",
        user_agent="UnitTest/1.0",
        request_id="req-12345678",
    ):
        event = record("auth.sign_out", outcome=Outcome.SUCCESS)
    event.refresh_from_db()
    assert (event.ip_address, event.user_agent, event.request_id, event.origin) == (
        "203.0.113.7",
        "UnitTest/1.0",
        "req-12345678",
        "web",
    )
    assert verify_chain(chain_scope(None)) == []
    set_column(event.pk, "origin", "command forged")
    assert any("altered" in p for p in verify_chain(chain_scope(None)))
