"""The work one mint costs the database (issue 16, "Measured": the broker's overhead over a
bare `/user/connect` is mostly round trips and commits). A mint in a window that already
exists: the build with its team, key and key state (one select); the three limit windows
(one UPSERT, in its own short transaction so a refusal counts in none); the token row and its
audit event in one transaction (the recorder's chain head lock, event, head update). The key's
`last_used_at` is written at most once a minute."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from builds.models import MintedToken
from builds.services import Issued
from tests.builds.support import CREDENTIAL_HEADER

pytestmark = pytest.mark.django_db(transaction=True)


def _mint(issued: Issued) -> int:
    response = Client().get(
        reverse("builds:token", args=[issued.build.pk]),
        headers={CREDENTIAL_HEADER: issued.credential},
    )
    return response.status_code


def test_one_mint_costs_a_fixed_number_of_queries(issued: Issued) -> None:
    assert _mint(issued) == 200  # the first: creates the windows, writes last_used_at
    with CaptureQueriesContext(connection) as captured:
        assert _mint(issued) == 200
    # On SQLite the sandbox ("Convai") answers from the same database connection: not ours.
    ours = [q["sql"] for q in captured.captured_queries if '"sandbox_' not in q["sql"]]
    statements = [sql.split()[0].upper() for sql in ours]
    assert statements == [
        "SELECT",  # the build, its team and key, whether the key still mints
        "BEGIN",
        "INSERT",  # the three windows: one UPSERT ... RETURNING
        "COMMIT",
        "BEGIN",
        "INSERT",  # the token row (encrypted, for a later revocation)
        "SELECT",  # the team's audit chain head, locked
        "INSERT",  # the event
        "UPDATE",  # the head
        "COMMIT",
    ], ours
    assert MintedToken.objects.filter(build=issued.build).count() == 2
