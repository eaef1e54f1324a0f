"""The audit log's plain-word search (target names) at any size: the same queries however
long the log, and on PostgreSQL a trigram index (migration 0005) on exactly the expression
Django writes for it, so a rare word is found from the index instead of by reading the log."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from audit.selectors import Criteria, events_matching
from teams.models import Role
from tests.audit.support import log_url, seed
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_a_word_search_costs_the_same_queries_on_a_longer_log(
    client: Client, team, django_assert_num_queries
) -> None:
    client.force_login(MembershipFactory.create(team=team, role=Role.ADMIN).user)
    seed(team, 5)
    client.get(log_url(team))  # the first visit saves the session's current team
    with CaptureQueriesContext(connection) as small:
        page = client.get(log_url(team, q='"Character 3" zeppelin'))
    assert page.status_code == 200
    seed(team, 60)
    with django_assert_num_queries(len(small.captured_queries)):
        client.get(log_url(team, q='"Character 3" zeppelin'))


def test_postgresql_answers_a_word_search_from_the_trigram_index(team) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the trigram index exists on PostgreSQL only")
    seed(team, 3)
    word = AuditEvent.objects.filter(target_label__icontains="zeppelin").order_by()
    condition = str(word.query).split(" WHERE ", 1)[1]  # UPPER(...::text) LIKE UPPER(...)
    assert condition in str(events_matching(team.pk, Criteria(text=["zeppelin"])).query)
    with transaction.atomic(), connection.cursor() as cursor:
        # A three-row table is read whole whatever the indexes: forbid that, so the plan
        # shows whether the index fits the expression Django writes.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = word.explain()
    assert "audit_target_label_trgm" in plan
