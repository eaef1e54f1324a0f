"""The build pages: register (the credential shown once, bad input kept and explained),
settings (rebinding a stopped build), the page's chart and quota, the warnings of keys' and
teams' pages about builds that stop with a key, and constant query counts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from builds.models import Build
from builds.services import Issued
from keys.services import revoke_api_key
from teams import services as teams
from teams.models import Membership, Role
from tests.builds.conftest import CREDENTIAL_HEADER
from tests.factories import MembershipFactory
from tests.support.characters import Key

pytestmark = pytest.mark.django_db(transaction=True)


def _form(admin_key: Key, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "WebGL beta",
        "api_key": str(admin_key.pk),
        "allowed_origins": "https://Play.Example.com/\nhttp://localhost:8080",
        "burst_per_minute": "10",
        "per_hour": "100",
        "expires_at": "",
        "player_auth": "",
        "player_public_key": "",
    }
    data.update(changes)
    return data


def test_register_shows_the_credential_once(
    client: Client, admin: Membership, admin_key: Key
) -> None:
    client.force_login(admin.user)
    response = client.post(reverse("builds:build-create", args=[admin.team.slug]), _form(admin_key))
    assert response.status_code == 200
    page = response.content.decode()
    credential = re.search(r'value="(cvb_[^"]+)"', page)
    assert credential is not None
    build = Build.objects.get()
    assert build.allowed_origins == ["https://play.example.com", "http://localhost:8080"]
    assert credential.group(1) not in str(Build.objects.values().get())  # only its digest
    assert reverse("builds:token", args=[build.pk]) in page
    for url in (
        reverse("builds:build-detail", args=[admin.team.slug, build.pk]),
        reverse("builds:build-list", args=[admin.team.slug]),
    ):
        shown = client.get(url).content.decode()
        assert credential.group(1) not in shown
        assert f"cvb_{build.credential_prefix}_…" in shown
    event = AuditEvent.objects.get(action="build.registered")
    assert credential.group(1) not in str(event.details)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"allowed_origins": "https://play.example.com/game"},
            "allowed_origins",
            "is not an origin",
        ),
        ({"allowed_origins": "https://*.example.com"}, "allowed_origins", "is not an origin"),
        ({"allowed_origins": "http://play.example.com"}, "allowed_origins", "plain http"),
        ({"burst_per_minute": "500", "per_hour": "100"}, "burst_per_minute", "cannot be more"),
        ({"expires_at": "2001-01-01T00:00"}, "expires_at", "in the future"),
        ({"player_auth": "RS256"}, "player_public_key", "Paste the public key"),
        (
            {
                "player_auth": "ES256",
                "player_public_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
            },
            "player_public_key",
            "private key",
        ),
        (
            {"player_auth": "ES256", "player_public_key": "not a key"},
            "player_public_key",
            "not a PEM",
        ),
        ({"api_key": "00000000-0000-0000-0000-000000000000"}, "api_key", "valid choice"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_bad_input_is_explained_and_kept(
    client: Client,
    admin: Membership,
    admin_key: Key,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    client.force_login(admin.user)
    data = _form(admin_key, **changes)
    response = client.post(reverse("builds:build-create", args=[admin.team.slug]), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])
    page = response.content.decode()
    if data["name"]:
        assert 'value="WebGL beta"' in page  # what was typed is still there
    assert not Build.objects.exists()
    assert not AuditEvent.objects.filter(action="build.registered").exists()


def test_another_members_key_outside_the_team_is_not_offered(
    client: Client, admin: Membership, add_key: Callable[..., Key]
) -> None:
    outsider = MembershipFactory.create(role=Role.OWNER)  # another team
    foreign = add_key(outsider, "Not ours")
    client.force_login(admin.user)
    page = client.get(reverse("builds:build-create", args=[admin.team.slug])).content.decode()
    assert str(foreign.pk) not in page
    response = client.post(
        reverse("builds:build-create", args=[admin.team.slug]),
        _form(foreign),  # type: ignore[arg-type]
    )
    assert "api_key" in response.context["form"].errors
    assert not Build.objects.exists()


def test_a_stopped_build_is_flagged_everywhere_and_rebinding_restarts_it(
    client: Client,
    admin: Membership,
    issued: Issued,
    add_key: Callable[..., Key],
) -> None:
    owner = MembershipFactory.create(team=admin.team, role=Role.OWNER)
    owner_key = add_key(owner, "Owner key")
    client.force_login(owner.user)
    # The remove dialog says the build will stop.
    dialog = client.get(reverse("teams:member-remove", args=[admin.team.slug, admin.pk]))
    assert "1 game build minting tokens with these API keys will stop" in dialog.content.decode()
    teams.remove_member(actor=owner, membership_id=admin.pk)
    token_url = reverse("builds:token", args=[issued.build.pk])
    assert client.get(token_url, headers={CREDENTIAL_HEADER: issued.credential}).status_code == 503
    detail = reverse("builds:build-detail", args=[admin.team.slug, issued.build.pk])
    page = client.get(detail).content.decode()
    assert "This build has stopped minting tokens" in page
    # The removed member's key page says so too (they may no longer see the team: counted).
    client.force_login(admin.user)
    keys_page = client.get(reverse("keys:list")).content.decode()
    assert "have stopped" in keys_page and "1 in teams you left" in keys_page
    # An admin rebinds it to another member's key: it mints again.
    client.force_login(owner.user)
    response = client.post(
        reverse("builds:build-update", args=[admin.team.slug, issued.build.pk]),
        {
            "name": "Demo build",
            "api_key": str(owner_key.pk),
            "allowed_origins": "https://play.example.com",
            "burst_per_minute": "30",
            "per_hour": "600",
        },
    )
    assert response.status_code == 302
    assert client.get(token_url, headers={CREDENTIAL_HEADER: issued.credential}).status_code == 200
    updated = AuditEvent.objects.get(action="build.updated")
    assert set(updated.details["changes"]) == {"api_key"}


def test_revoking_a_key_warns_about_its_builds(
    client: Client, admin: Membership, admin_key: Key, issued: Issued
) -> None:
    client.force_login(admin.user)
    dialog = client.get(reverse("keys:revoke", args=[admin_key.pk])).content.decode()
    assert "1 game build minting tokens with this key will stop" in dialog
    revoke_api_key(actor=admin.user, api_key_id=admin_key.pk)
    keys_page = client.get(reverse("keys:list")).content.decode()
    assert "“Demo build” (Studio)" in keys_page


def test_the_build_page_charts_the_last_day_and_shows_the_quota(
    client: Client, admin: Membership, issued: Issued
) -> None:
    token_url = reverse("builds:token", args=[issued.build.pk])
    for _ in range(3):
        client.get(token_url, headers={CREDENTIAL_HEADER: issued.credential})
    client.force_login(admin.user)
    detail = reverse("builds:build-detail", args=[admin.team.slug, issued.build.pk])
    response = client.get(detail)
    bars = response.context["bars"]
    assert len(bars) == 24 and bars[-1].count == 3 and sum(b.count for b in bars) == 3
    page = response.content.decode()
    assert page.count('<rect class="bar') == 24
    assert "Core API" in page or "Interactions" in page  # the key's quota, as keys shows it
    assert "style=" not in page.split("<main", 1)[1]  # strict CSP: no inline styles


@pytest.mark.parametrize("builds", [1, 6])
def test_the_list_and_the_page_cost_a_constant_number_of_queries(
    client: Client, admin: Membership, register: Callable[..., Issued], builds: int
) -> None:
    made = [register(name=f"Build {i}") for i in range(builds)]
    client.force_login(admin.user)
    counts = []
    for url in (
        reverse("builds:build-list", args=[admin.team.slug]),
        reverse("builds:build-detail", args=[admin.team.slug, made[0].build.pk]),
    ):
        client.get(url)  # warm the session and caches
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(len(queries))
    # Session, user, membership, then the list (one query) / the build, its chart and the
    # navigation: the same for one build as for six.
    assert counts == [5, 7]
