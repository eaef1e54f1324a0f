"""Out-of-range dates and numbers in the audit log's filters: a clear warning, never a 500,
on the page and on both exports."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from teams.models import Role
from tests.audit.support import log_url, seed
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(team):
    return MembershipFactory.create(team=team, role=Role.ADMIN)


def _ids(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


HUGE = "9" * 20  # past any 64-bit integer

OUT_OF_RANGE = [
    {"q": "created:9999-12-31"},
    {"q": "created:>9999-12-31"},
    {"q": "created:<0001-01-01"},
    {"q": "created:0001-01-01..9999-12-31"},
    {"until": "9999-12-31"},
    {"actor": HUGE},
    {"member": HUGE},
]


@pytest.mark.parametrize("params", OUT_OF_RANGE, ids=_ids)
def test_the_page_warns_like_for_any_bad_qualifier(client: Client, team, admin, params) -> None:
    seed(team, 2, label="Visible")
    client.force_login(admin.user)
    response = client.get(log_url(team, **params))
    assert response.status_code == 200
    warnings = [str(e) for e in response.context["criteria"].errors]
    assert warnings, "an out-of-range filter must be named in the warning"
    assert "out of range" in " ".join(warnings)
    assert 'class="alert alert-warning"' in response.content.decode()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("params", OUT_OF_RANGE, ids=_ids)
def test_the_exports_refuse_like_for_any_bad_filter(
    client: Client, team, admin, params, fmt
) -> None:
    seed(team, 2)
    client.force_login(admin.user)
    url = reverse(f"audit:export-{fmt}", args=[team.slug])
    response = client.get(url, params)
    assert response.status_code == 400
    assert "out of range" in response.content.decode()
    assert not AuditEvent.objects.filter(team=team, action="audit.exported").exists()


def test_the_widest_valid_range_still_works(client: Client, team, admin) -> None:
    seed(team, 2, label="Visible")
    client.force_login(admin.user)
    response = client.get(log_url(team, q="created:0001-01-01..9999-12-30"))
    assert response.status_code == 200
    assert not response.context["criteria"].errors
    assert response.content.decode().count("Visible") >= 2
