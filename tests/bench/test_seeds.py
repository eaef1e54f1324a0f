"""The benchmark seeders write what the product would: COPY on PostgreSQL (bulk_create on
SQLite) gives every row its id, and a seeded audit chain verifies like one written by
`record`, continuing after real events and followed by them."""

from __future__ import annotations

import pytest

from audit.chain import verify_scope
from audit.models import AuditChain, AuditEvent
from audit.services import chain_scope, record
from characters.models import Character, Revision
from teams.models import Team
from tests.bench.copy_rows import insert_rows
from tests.bench.seed_audit import seed_audit_events
from tests.bench.seed_characters import seed_characters
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


def test_seeded_characters_have_ids_and_their_revisions() -> None:
    seed_characters(team="seeded", characters=12, revisions=3)
    team = Team.objects.get(slug="seeded")
    characters = Character.objects.filter(team=team)
    assert characters.count() == 12
    assert Revision.objects.filter(character__team=team).count() == 36
    assert {c.revisions.count() for c in characters} == {3}  # type: ignore[attr-defined]


def test_insert_rows_sets_each_instance_id() -> None:
    seed_characters(team="seeded", characters=2, revisions=0)
    character = Character.objects.filter(team__slug="seeded").first()
    assert character is not None
    rows = [
        Revision(character=character, number=n, reason=Revision.Reason.UPDATED, fields={})
        for n in (1, 2)
    ]
    insert_rows(Revision, rows)
    assert all(row.pk for row in rows)
    assert set(Revision.objects.filter(character=character).values_list("pk", flat=True)) == {
        row.pk for row in rows
    }


def test_a_seeded_chain_verifies_between_real_events() -> None:
    team = TeamFactory(slug="chained")
    record("team.renamed", team=team)  # a real event first: the seed continues the chain
    seed_audit_events(team="chained", events=250, actors=3, batch=100)
    record("team.renamed", team=team)  # and record() continues after the seed
    scope = chain_scope(team)
    report = verify_scope(scope)
    assert report.problems == []
    assert report.events == 252
    assert AuditChain.objects.get(scope=scope).seq == 252
    assert AuditEvent.objects.filter(chain=scope).count() == 252


def test_the_audit_table_keeps_every_index_and_constraint() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("indexes are rebuilt after the load on PostgreSQL only")

    def definitions() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent' UNION ALL "
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'audit_auditevent'::regclass"
            )
            return {row[0] for row in cursor.fetchall()}

    before = definitions()
    TeamFactory(slug="chained")
    seed_audit_events(team="chained", events=30, actors=2)
    assert definitions() == before
    assert len(before) > 10
