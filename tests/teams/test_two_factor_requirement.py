"""A team setting "members must use two-factor": only Owners set it (and only with two-factor
of their own), it is audited, and a member without two-factor sees only the page asking them to
set it up (on every team URL: the role matrices' check_two_factor_gate tests)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from teams.models import Role
from tests.accounts.mfa_support import enable_totp
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

GATE_TEXT = "requires two-factor"


def set_requirement(client: Client, team, on: bool):
    data = {"required": "on"} if on else {}
    return client.post(reverse("teams:settings-two-factor", args=[team.slug]), data, follow=True)


def test_an_owner_with_two_factor_requires_it_and_it_is_audited(client) -> None:
    owner = MembershipFactory(role=Role.OWNER)
    enable_totp(owner.user)
    client.force_login(owner.user)
    page = set_requirement(client, owner.team, True).content.decode()
    assert "Members must now use two-factor." in page
    owner.team.refresh_from_db()
    assert owner.team.require_two_factor
    event = AuditEvent.objects.get(action="team.two_factor_required")
    assert (event.actor, event.team, event.details) == (
        owner.user,
        owner.team,
        {"required": [False, True]},
    )
    set_requirement(client, owner.team, False)
    owner.team.refresh_from_db()
    assert not owner.team.require_two_factor


def test_an_owner_without_two_factor_cannot_shut_themselves_out(client) -> None:
    owner = MembershipFactory(role=Role.OWNER)
    client.force_login(owner.user)
    page = set_requirement(client, owner.team, True).content.decode()
    assert "Turn on two-factor for your own account first" in page
    owner.team.refresh_from_db()
    assert not owner.team.require_two_factor
    assert not AuditEvent.objects.filter(action="team.two_factor_required").exists()


def test_the_settings_page_shows_the_switch_to_owners(client) -> None:
    owner = MembershipFactory(role=Role.OWNER)
    client.force_login(owner.user)
    html = client.get(reverse("teams:settings", args=[owner.team.slug])).content.decode()
    assert reverse("teams:settings-two-factor", args=[owner.team.slug]) in html
    assert "Members must use two-factor" in html


def test_a_member_with_two_factor_works_as_before(client) -> None:
    editor = MembershipFactory(role=Role.EDITOR)
    editor.team.require_two_factor = True
    editor.team.save()
    enable_totp(editor.user)
    client.force_login(editor.user)
    response = client.get(reverse("teams:overview", args=[editor.team.slug]))
    assert response.status_code == 200
    assert GATE_TEXT not in response.content.decode()


def test_account_pages_stay_open_to_set_it_up(client) -> None:
    editor = MembershipFactory(role=Role.EDITOR)
    editor.team.require_two_factor = True
    editor.team.save()
    client.force_login(editor.user)
    assert client.get(reverse("mfa_index")).status_code == 200
    assert client.get(reverse("mfa_activate_totp")).status_code == 200


def test_the_gate_costs_no_query_where_two_factor_is_not_required(client) -> None:
    """team_view asks whether the member has two-factor only when the team requires it: one
    query then, none otherwise."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    editor = MembershipFactory(role=Role.EDITOR)
    enable_totp(editor.user)
    client.force_login(editor.user)
    url = reverse("teams:overview", args=[editor.team.slug])
    client.get(url)  # warm: the current team is remembered in the session once
    with CaptureQueriesContext(connection) as free:
        assert client.get(url).status_code == 200
    editor.team.require_two_factor = True
    editor.team.save()
    with CaptureQueriesContext(connection) as gated:
        assert client.get(url).status_code == 200
    assert len(gated.captured_queries) == len(free.captured_queries) + 1
