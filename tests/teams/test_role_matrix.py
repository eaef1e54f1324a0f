"""Role-by-view matrix of the teams app's team-scoped endpoints (the matrix itself:
tests/support/role_matrix.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from teams import policy
from teams.models import Invitation, Membership, Role, Team
from tests.support.role_matrix import (
    Endpoint,
    World,
    build_world,
    check_access,
    check_two_factor_gate,
    matrix_params,
)
from tests.support.sign_in_limits import is_locked_out

# --- The teams app's team-scoped endpoints ----------------------------------------------------


def _target(world: World) -> dict[str, Any]:
    return {"membership_id": world.target.pk}


def _invitation(world: World) -> dict[str, Any]:
    return {"invitation_id": world.invitation.pk}


def _target_gone(world: World) -> bool:
    return not Membership.objects.filter(pk=world.target.pk).exists()


def _target_role_changed(world: World) -> bool:
    return Membership.objects.get(pk=world.target.pk).role != Role.VIEWER


def _invitation_revoked(world: World) -> bool:
    return Invitation.objects.get(pk=world.invitation.pk).revoked_at is not None


def _require_two_factor(world: World) -> dict[str, Any]:
    """The form turning the requirement on, with two-factor on for the Owner (an Owner without
    it may not require it: that refusal is tested in test_two_factor_requirement)."""
    from tests.accounts.mfa_support import enable_totp, has_totp

    owner = world.members["owner"].user
    if not has_totp(owner):
        enable_totp(owner)
    return {"required": "on"}


def _two_factor_required(world: World) -> bool:
    world.team.refresh_from_db()
    return world.team.require_two_factor


def _renamed(world: World) -> bool:
    return Team.objects.get(pk=world.team.pk).name == "Renamed Studio"


def _target_became_owner(world: World) -> bool:
    return Membership.objects.get(pk=world.target.pk).role == Role.OWNER


def _archived(world: World) -> bool:
    return Team.objects.get(pk=world.team.pk).archived_at is not None


def _deleted(world: World) -> bool:
    team = Team.objects.get(pk=world.team.pk)
    return team.deleted_at is not None or not Membership.objects.filter(team=team).exists()


def _invited(world: World) -> bool:
    return Invitation.objects.filter(team=world.team).count() > 1


def _target_unlocked(world: World) -> bool:
    return not is_locked_out(world.target.user.username)


TEAM_ENDPOINTS = [
    Endpoint("teams:overview", "get", "team.view"),
    Endpoint("teams:members", "get", "member.view"),
    Endpoint("teams:settings", "get", "team.settings"),
    Endpoint(
        "teams:settings",
        "post",
        "team.settings",
        data=lambda w: {"name": "Renamed Studio"},
        ok=(302,),
        changed=_renamed,
    ),
    Endpoint("teams:transfer", "get", "team.transfer"),
    Endpoint(
        "teams:transfer",
        "post",
        "team.transfer",
        data=lambda w: {"member": w.target.pk, "confirm": w.team.name},
        ok=(302,),
        changed=_target_became_owner,
    ),
    Endpoint("teams:archive", "get", "team.archive"),
    Endpoint(
        "teams:archive",
        "post",
        "team.archive",
        data=lambda w: {"confirm": w.team.name},
        ok=(302,),
        changed=_archived,
    ),
    # Unarchiving an active team is a message, not a change (the archived case:
    # test_lifecycle.py).
    Endpoint("teams:unarchive", "post", "team.unarchive", ok=(302,)),
    Endpoint("teams:delete", "get", "team.delete"),
    Endpoint(
        "teams:delete",
        "post",
        "team.delete",
        data=lambda w: {"confirm": w.team.name},
        ok=(302,),
        changed=_deleted,
    ),
    Endpoint(
        "teams:settings-two-factor",
        "post",
        "team.require_two_factor",
        data=_require_two_factor,
        ok=(302,),
        changed=_two_factor_required,
    ),
    Endpoint("teams:leave", "get", "team.leave"),
    Endpoint("teams:leave", "get", "team.leave", htmx=True),
    Endpoint("teams:leave", "post", "team.leave", ok=(302,)),
    Endpoint(
        "teams:member-role",
        "post",
        "member.change_role",
        url_kwargs=_target,
        data=lambda w: {f"m{w.target.pk}-role": Role.EDITOR.value},
        ok=(302,),
        changed=_target_role_changed,
    ),
    Endpoint("teams:member-remove", "get", "member.remove", url_kwargs=_target),
    Endpoint("teams:member-remove", "get", "member.remove", url_kwargs=_target, htmx=True),
    Endpoint(
        "teams:member-remove",
        "post",
        "member.remove",
        url_kwargs=_target,
        ok=(302,),
        changed=_target_gone,
    ),
    Endpoint(
        "teams:member-unlock",
        "post",
        "member.unlock",
        url_kwargs=_target,
        ok=(302,),
        changed=_target_unlocked,
    ),
    Endpoint("teams:invitations", "get", "invitation.view"),
    Endpoint("teams:invitation-create", "get", "invitation.create"),
    Endpoint(
        "teams:invitation-create",
        "post",
        "invitation.create",
        data=lambda w: {"role": Role.VIEWER.value, "email": "new@example.test"},
        changed=_invited,
    ),
    Endpoint("teams:invitation-revoke", "get", "invitation.revoke", url_kwargs=_invitation),
    Endpoint(
        "teams:invitation-revoke", "get", "invitation.revoke", url_kwargs=_invitation, htmx=True
    ),
    Endpoint(
        "teams:invitation-revoke",
        "post",
        "invitation.revoke",
        url_kwargs=_invitation,
        ok=(302,),
        changed=_invitation_revoked,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "actor"), matrix_params(TEAM_ENDPOINTS))
def test_team_endpoints_role_matrix(client: Client, endpoint: Endpoint, actor: str) -> None:
    check_access(client, build_world(), endpoint, actor)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", TEAM_ENDPOINTS, ids=str)
def test_team_endpoints_two_factor_gate(client: Client, endpoint: Endpoint) -> None:
    check_two_factor_gate(client, build_world(), endpoint)


def test_matrix_covers_every_team_scoped_url() -> None:
    """A new team-scoped URL of the teams app must be added to the matrix (the keys app's URLs
    are personal, not team-scoped)."""
    from keys import urls as key_urls
    from teams import urls as team_urls

    scoped = {
        f"{team_urls.app_name}:{p.name}"
        for p in team_urls.urlpatterns
        if "team_slug" in str(p.pattern)
    }
    assert scoped == {e.url_name for e in TEAM_ENDPOINTS}
    assert not [p for p in key_urls.urlpatterns if "team_slug" in str(p.pattern)]


def test_every_endpoint_action_is_a_policy_action() -> None:
    for endpoint in TEAM_ENDPOINTS:
        policy.floor(endpoint.action)  # KeyError for a typo


@pytest.mark.django_db
def test_authorized_post_endpoints_take_effect(client: Client) -> None:
    """The matrix's refusals mean something only if the same request works for the right role."""
    for endpoint in TEAM_ENDPOINTS:
        if endpoint.changed is None:
            continue
        world = build_world()
        # The smallest role that may: the policy's floor, but never less than Admin (the
        # target is a Viewer that only Admins and Owners manage).
        floor = policy.floor(endpoint.action)
        actor = floor if policy.rank(floor) >= policy.rank(Role.ADMIN) else Role.ADMIN
        check_access(client, world, endpoint, actor)
        assert endpoint.changed(world), f"{endpoint} as {actor} did nothing"
        client.logout()
