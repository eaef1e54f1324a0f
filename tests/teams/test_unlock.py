"""Security finding 8: a member locked out of sign-in (too many wrong passwords, allauth's
per-account limit in the shared cache, accounts/limits.py)
can be unlocked by an Admin or Owner who manages them, from the Members page, and that is
audited. Nobody else can, and a refused unlock changes nothing."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from teams.models import Membership, Role, Team
from tests.accounts.mfa_support import enable_totp, totp_code
from tests.factories import TEST_PASSWORD, MembershipFactory
from tests.support.sign_in_limits import is_locked_out

pytestmark = pytest.mark.django_db

LOCKED_BADGE = "Sign-in locked"
UNLOCK_BUTTON = "Unlock sign-in"


def sign_in(username: str, password: str) -> HttpResponse:
    """A sign-in attempt from a browser of its own (the same network address each time)."""
    return Client().post(reverse("accounts:login"), {"login": username, "password": password})


def lock_out(member: Membership) -> None:
    """Wrong passwords through the sign-in page until the account is locked."""
    for _ in range(settings.SIGN_IN_FAILURE_LIMIT):
        assert sign_in(member.user.username, "wrong-password-1").status_code != 302
    assert not signs_in(member)


def signs_in(member: Membership) -> bool:
    response = sign_in(member.user.username, TEST_PASSWORD)
    return response.status_code == 302


def unlock_url(member: Membership) -> str:
    return reverse("teams:member-unlock", args=[member.team.slug, member.pk])


def members_page(client: Client, team: Team) -> str:
    return client.get(reverse("teams:members", args=[team.slug])).content.decode()


def row_of(html: str, member: Membership) -> str:
    """The Members page's table row of one member."""
    return html.split(f'id="member-{member.pk}"', 1)[1].split("</tr>", 1)[0]


@pytest.fixture
def admin(team: Team) -> Membership:
    MembershipFactory.create(team=team, role=Role.OWNER)
    return MembershipFactory.create(team=team, role=Role.ADMIN)


def test_the_locked_page_says_who_can_help() -> None:
    member = MembershipFactory.create(role=Role.EDITOR)
    lock_out(member)
    page = sign_in(member.user.username, TEST_PASSWORD).content.decode()
    assert "An Admin or Owner of your team can unlock it" in page


def test_an_admin_sees_the_lock_and_unlocks_it(client: Client, team: Team, admin) -> None:
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    bystander = MembershipFactory.create(team=team, role=Role.VIEWER)
    client.force_login(admin.user)
    assert LOCKED_BADGE not in members_page(client, team)

    lock_out(editor)
    html = members_page(client, team)
    assert LOCKED_BADGE in row_of(html, editor)
    assert UNLOCK_BUTTON in row_of(html, editor)
    assert f'action="{unlock_url(editor)}"' in html
    # Only the locked member's row offers it.
    assert LOCKED_BADGE not in row_of(html, bystander)
    assert UNLOCK_BUTTON not in row_of(html, bystander)

    response = client.post(unlock_url(editor), follow=True)
    assert response.redirect_chain[-1][0] == reverse("teams:members", args=[team.slug])
    assert f"{editor.user.display_name} can sign in again" in response.content.decode()
    assert LOCKED_BADGE not in members_page(client, team)
    assert signs_in(editor)

    event = AuditEvent.objects.get(action="member.unlocked")
    assert (event.outcome, event.actor, event.team) == (Outcome.SUCCESS, admin.user, team)
    assert event.target_id == str(editor.pk)
    assert event.details["username"] == editor.user.username
    assert event.details["attempts_cleared"] >= 1


def test_an_owner_unlocks_an_admin(client: Client, team: Team, admin) -> None:
    owner = Membership.objects.get(team=team, role=Role.OWNER)
    lock_out(admin)
    client.force_login(owner.user)
    assert UNLOCK_BUTTON in row_of(members_page(client, team), admin)
    client.post(unlock_url(admin))
    assert signs_in(admin)


def test_an_admin_cannot_unlock_an_owner(client: Client, team: Team, admin) -> None:
    owner = Membership.objects.get(team=team, role=Role.OWNER)
    lock_out(owner)
    client.force_login(admin.user)
    html = members_page(client, team)
    assert LOCKED_BADGE in row_of(html, owner)
    assert UNLOCK_BUTTON not in row_of(html, owner)

    response = client.post(unlock_url(owner), follow=True)
    assert "Only an Owner can unlock Admins and Owners" in response.content.decode()
    assert is_locked_out(owner.user.username)
    assert not signs_in(owner)
    [event] = AuditEvent.objects.filter(team=team, outcome=Outcome.DENIED)
    assert (event.action, event.actor, event.target_id) == (
        "member.unlocked",
        admin.user,
        str(owner.pk),
    )
    assert not AuditEvent.objects.filter(action="member.unlocked", outcome=Outcome.SUCCESS)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_viewers_and_editors_cannot_unlock(client: Client, team: Team, role: Role) -> None:
    actor = MembershipFactory.create(team=team, role=role)
    locked = MembershipFactory.create(team=team, role=Role.VIEWER)
    lock_out(locked)
    client.force_login(actor.user)
    assert UNLOCK_BUTTON not in members_page(client, team)

    assert client.post(unlock_url(locked)).status_code == 403
    assert is_locked_out(locked.user.username)
    assert not signs_in(locked)
    [event] = AuditEvent.objects.filter(team=team, outcome=Outcome.DENIED)
    assert (event.action, event.actor, event.details["required"]) == (
        "member.unlock",
        actor.user,
        "admin",
    )


def test_nobody_unlocks_a_member_of_another_team(client: Client, team: Team, admin) -> None:
    stranger = MembershipFactory.create(role=Role.VIEWER)
    lock_out(stranger)
    client.force_login(admin.user)
    foreign = reverse("teams:member-unlock", args=[team.slug, stranger.pk])
    assert client.post(foreign).status_code == 404
    assert not signs_in(stranger)


def test_unlock_is_post_only(client: Client, team: Team, admin) -> None:
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    lock_out(editor)
    client.force_login(admin.user)
    assert client.get(unlock_url(editor)).status_code == 405
    assert not signs_in(editor)


def test_unlocking_lifts_only_the_members_lock(client: Client, team: Team, admin, settings) -> None:
    """The unlock clears the member's per-account counter, not the per-IP counter of their
    network (allauth's public clear would clear both, for the Admin's own address)."""
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "login_failed": f"7/3600s/ip,{settings.SIGN_IN_FAILURE_LIMIT}/900s/key",
    }
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    # Five failures and the refused try from the test client's address: six on its counter
    # (allauth counts a try against the per-IP rate before the per-account one refuses it).
    lock_out(editor)
    client.force_login(admin.user)
    client.post(unlock_url(editor))
    assert signs_in(editor)
    # One more failure from that address reaches its limit of seven: its counter was kept.
    refused = sign_in(admin.user.username, "wrong-password-1")
    assert refused.status_code == 429
    assert "from your network" in refused.content.decode()


def test_the_locks_live_in_the_shared_cache() -> None:
    """Every process counts in the same place and a restart forgets nothing: the database
    cache, or Redis with REDIS_URL; never the per-process local-memory cache."""
    backend = settings.CACHES["default"]["BACKEND"]
    assert backend in {
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.redis.RedisCache",
    }


def test_a_lock_from_wrong_two_factor_codes_is_shown_and_lifted(
    client: Client, team: Team, admin: Membership
) -> None:
    """The right password, then too many wrong codes: allauth.mfa locks the person under its
    own key. The Members page shows that lock too, and Unlock lifts it (before, only the
    wrong-password lock was seen and cleared, so such a member stayed locked out)."""
    editor = MembershipFactory.create(team=team, role=Role.EDITOR)
    secret, _codes = enable_totp(editor.user)
    browser = Client()
    browser.post(
        reverse("accounts:login"), {"login": editor.user.username, "password": TEST_PASSWORD}
    )
    for _ in range(settings.SIGN_IN_FAILURE_LIMIT):
        browser.post(reverse("mfa_authenticate"), {"code": "000000"})
    refused = browser.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert "Too many failed login attempts" in refused.content.decode()

    client.force_login(admin.user)
    html = members_page(client, team)
    assert LOCKED_BADGE in row_of(html, editor) and UNLOCK_BUTTON in row_of(html, editor)

    client.post(unlock_url(editor))

    assert LOCKED_BADGE not in row_of(members_page(client, team), editor)
    event = AuditEvent.objects.get(action="member.unlocked")
    assert event.details["attempts_cleared"] >= settings.SIGN_IN_FAILURE_LIMIT
    done = browser.post(reverse("mfa_authenticate"), {"code": totp_code(secret, offset=1)})
    assert done.status_code == 302
