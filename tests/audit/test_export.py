"""The exports read keyset batches (no long-held cursor): every row once, in order, across
batch boundaries, with seals that still verify offline; and the first bytes leave before the
last batch is read."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit import export
from audit.chain import iso
from audit.models import AuditEvent
from audit.services import record
from teams.models import Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(team):
    return MembershipFactory.create(team=team, role=Role.ADMIN)


def seed(team, n: int) -> None:
    user = UserFactory.create()
    for i in range(n):
        record(
            "character.update",
            actor=user,
            team=team,
            target_type="character",
            target_id=f"cid-{i}",
            target_label=f'Character "{i}" \u00e9\n=1+1',
            details={"changes": {"name": [f"old {i}", f"new \u2603 {i}"]}},
        )


def test_jsonl_crosses_batches_in_order_and_verifies_offline(
    client: Client, team, admin, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(export, "CHUNK", 2)
    seed(team, 5)
    client.force_login(admin.user)
    response = client.get(reverse("audit:export-jsonl", args=[team.slug]))
    chunks = list(response.streaming_content)
    assert len(chunks) == 3  # 5 events in batches of 2 (the export's own event is excluded)
    lines = b"".join(chunks).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    expected = list(
        AuditEvent.objects.filter(team=team)
        .exclude(action="audit.exported")
        .order_by("-id")
        .values_list("id", flat=True)
    )
    assert [r["id"] for r in rows] == expected
    event = AuditEvent.objects.get(pk=rows[0]["id"])
    assert rows[0]["created_at"] == iso(event.created_at)
    assert rows[0]["details"] == event.details
    assert rows[0]["target_label"] == event.target_label
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(lines))
    out = io.StringIO()
    call_command("audit_verify", "--export", str(path), stdout=out)
    assert "All 5 exported event(s) verify." in out.getvalue()


def test_csv_crosses_batches_with_one_header(client: Client, team, admin, monkeypatch) -> None:
    monkeypatch.setattr(export, "CHUNK", 2)
    seed(team, 4)
    client.force_login(admin.user)
    body = b"".join(client.get(reverse("audit:export-csv", args=[team.slug])).streaming_content)
    import csv

    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == list(export.COLUMNS)
    assert len(rows) == 5
    assert all(row[17].startswith('Character "') for row in rows[1:])


def test_first_bytes_come_from_the_first_batch_alone(team, monkeypatch) -> None:
    """The first chunk costs one short query, whatever the size of the set."""
    monkeypatch.setattr(export, "CHUNK", 2)
    seed(team, 7)
    events = AuditEvent.objects.filter(team=team).order_by("-id")
    with CaptureQueriesContext(connection) as queries:
        first = next(export.jsonl(events))
    assert first.count(b"\n") == 2
    assert len(queries) == 1
    assert "LIMIT 2" in queries[0]["sql"]


def test_a_whole_second_keeps_its_spelling(
    client: Client, team, admin, tmp_path, monkeypatch
) -> None:
    """created_at with no microseconds: isoformat() omits them, and so must the export (the
    seal covers that spelling)."""
    import audit.services

    moment = datetime(2026, 11, 26, 10, 53, 22, tzinfo=UTC)
    monkeypatch.setattr(audit.services.timezone, "now", lambda: moment)
    seed(team, 1)
    monkeypatch.undo()
    client.force_login(admin.user)
    for url in ("audit:export-jsonl", "audit:export-csv"):
        body = b"".join(client.get(reverse(url, args=[team.slug])).streaming_content).decode()
        assert "2026-11-26T10:53:22+00:00" in body
    lines = b"".join(
        client.get(reverse("audit:export-jsonl", args=[team.slug])).streaming_content
    ).decode()
    path = tmp_path / "audit.jsonl"
    path.write_text(lines)
    call_command("audit_verify", "--export", str(path), stdout=io.StringIO())


def test_a_date_range_export_holds_that_range_only(
    client: Client, team, admin, monkeypatch
) -> None:
    import audit.services

    monkeypatch.setattr(export, "CHUNK", 2)
    for day in (1, 2, 2, 2, 3):
        moment = datetime(2026, 11, day, 12, 0, 0, 5, tzinfo=UTC)
        monkeypatch.setattr(audit.services.timezone, "now", lambda m=moment: m)
        seed(team, 1)
    monkeypatch.undo()
    client.force_login(admin.user)
    url = reverse("audit:export-jsonl", args=[team.slug])
    body = b"".join(client.get(url + "?since=2026-11-02&until=2026-11-02").streaming_content)
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [r["created_at"][:10] for r in rows] == ["2026-11-02"] * 3
