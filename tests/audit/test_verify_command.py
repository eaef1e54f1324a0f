from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.services import record
from tests.audit.tampering import set_column
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


def test_intact_chains_pass() -> None:
    team = TeamFactory.create()
    record("team.created", team=team)
    record("auth.sign_in")
    out = StringIO()
    call_command("verify_audit_log", stdout=out)
    assert "All 2 audit chain(s) are intact." in out.getvalue()


def test_a_tampered_row_fails_and_is_named() -> None:
    team = TeamFactory.create()
    event = record("team.created", team=team)
    record("team.renamed", team=team)
    set_column(event.pk, "outcome", "denied")
    err = StringIO()
    with pytest.raises(CommandError, match="1 of 1 audit chain"):
        call_command("audit_verify", stderr=err)
    assert f"team:{team.pk}: seq 1 (id {event.pk}) was altered or forged" in err.getvalue()
