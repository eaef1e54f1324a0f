"""Invitations: who may invite whom, the link shown once, expiry, single use, revoking,
joining while signed in and signing up through a link."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent, Outcome
from teams import errors, invitations, policy
from teams.models import Invitation, Membership, Role
from tests.factories import TEST_PASSWORD, MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

STRONG_PASSWORD = "violet-harbor-lantern-42"


def accept_url(token: str) -> str:
    return reverse("teams:invitation-accept", kwargs={"token": token})


@pytest.fixture
def admin(team) -> Membership:
    MembershipFactory.create(team=team, role=Role.OWNER)
    return MembershipFactory.create(team=team, role=Role.ADMIN)


@pytest.fixture
def invite(admin: Membership) -> invitations.CreatedInvitation:
    return invitations.create_invitation(actor=admin, role=Role.EDITOR, email="sam@example.test")


# --- Creating ------------------------------------------------------------------------------------


def test_created_invitation_stores_only_the_token_hash(admin: Membership, settings) -> None:
    created = invitations.create_invitation(
        actor=admin, role=Role.VIEWER, email=" kim@example.test "
    )
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hashlib.sha256(created.token.encode()).hexdigest()
    assert created.token not in invitation.token_hash
    assert len(created.token) >= 40
    assert invitation.email == "kim@example.test"
    assert invitation.role == Role.VIEWER
    assert invitation.created_by == admin.user
    lifetime = invitation.expires_at - invitation.created_at
    assert lifetime == timedelta(days=settings.INVITATION_VALID_DAYS)
    event = AuditEvent.objects.get(action="invitation.created")
    assert event.outcome == Outcome.SUCCESS
    assert created.token not in str(event.details)
    assert event.details["role"] == "viewer"


def test_tokens_are_unique(admin: Membership) -> None:
    tokens = {invitations.create_invitation(actor=admin, role=Role.VIEWER).token for _ in range(5)}
    assert len(tokens) == 5


@pytest.mark.parametrize(
    ("actor_role", "role", "allowed"),
    [
        (Role.ADMIN, Role.VIEWER, True),
        (Role.ADMIN, Role.EDITOR, True),
        (Role.ADMIN, Role.ADMIN, False),
        (Role.ADMIN, Role.OWNER, False),
        (Role.OWNER, Role.ADMIN, True),
        (Role.OWNER, Role.OWNER, False),
    ],
)
def test_who_may_invite_which_role(team, actor_role: Role, role: Role, allowed: bool) -> None:
    actor = MembershipFactory.create(team=team, role=actor_role)
    if allowed:
        invitations.create_invitation(actor=actor, role=role)
        assert Invitation.objects.get().role == role
    else:
        with pytest.raises(policy.NotAllowed):
            invitations.create_invitation(actor=actor, role=role)
        assert not Invitation.objects.exists()
        event = AuditEvent.objects.get(action="invitation.created")
        assert event.outcome == Outcome.DENIED
        assert event.details["invited_role"] == role.value


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_editors_and_viewers_cannot_invite(team, role: Role) -> None:
    actor = MembershipFactory.create(team=team, role=role)
    with pytest.raises(policy.NotAllowed):
        invitations.create_invitation(actor=actor, role=Role.VIEWER)
    assert not Invitation.objects.exists()
    event = AuditEvent.objects.get(outcome=Outcome.DENIED)
    assert (event.action, event.actor) == ("invitation.created", actor.user)


def test_create_view_shows_the_link_once_and_never_caches(client: Client, admin) -> None:
    client.force_login(admin.user)
    url = reverse("teams:invitation-create", args=[admin.team.slug])
    response = client.post(url, {"role": "editor", "email": "lee@example.test"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    link = response.context["link"]
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert link == "http://testserver" + accept_url(token)
    assert link in response.content.decode()
    assert Invitation.objects.get().token_hash == invitations.hash_token(token)
    # Nowhere else shows it again.
    listing = client.get(reverse("teams:invitations", args=[admin.team.slug]))
    assert token not in listing.content.decode()
    assert "lee@example.test" in listing.content.decode()


def test_create_view_offers_admin_role_only_to_owners(client: Client, team) -> None:
    owner = MembershipFactory.create(team=team, role=Role.OWNER)
    admin = MembershipFactory.create(team=team, role=Role.ADMIN)
    url = reverse("teams:invitation-create", args=[team.slug])
    client.force_login(admin.user)
    assert '<option value="admin"' not in client.get(url).content.decode()
    response = client.post(url, {"role": "admin"})
    assert response.status_code == 200
    assert "Only an Owner can invite Admins" in response.content.decode()
    assert not Invitation.objects.exists()
    client.force_login(owner.user)
    html = client.get(url).content.decode()
    assert '<option value="admin"' in html
    assert '<option value="owner"' not in html


def test_create_view_validates_email(client: Client, admin) -> None:
    client.force_login(admin.user)
    url = reverse("teams:invitation-create", args=[admin.team.slug])
    response = client.post(url, {"role": "viewer", "email": "not-an-email"})
    assert response.status_code == 200
    assert response.context["form"].errors["email"]
    assert not Invitation.objects.exists()


# --- Accepting while signed in -------------------------------------------------------------------


def test_accept_joins_with_the_role_and_uses_up_the_link(invite) -> None:
    user = UserFactory.create()
    membership = invitations.accept_invitation(actor=user, token=invite.token)
    assert (membership.team, membership.user, membership.role) == (
        invite.invitation.team,
        user,
        Role.EDITOR,
    )
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == user
    assert invitation.accepted_at is not None
    event = AuditEvent.objects.get(action="invitation.accepted")
    assert (event.outcome, event.actor, event.team) == (
        Outcome.SUCCESS,
        user,
        invite.invitation.team,
    )
    with pytest.raises(errors.InvitationUnusable) as error:
        invitations.accept_invitation(actor=UserFactory.create(), token=invite.token)
    assert error.value.reason == "accepted"
    assert Membership.objects.filter(team=invite.invitation.team).count() == 3


def test_expired_invitation_cannot_be_used(invite) -> None:
    Invitation.objects.filter(pk=invite.invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(errors.InvitationUnusable) as error:
        invitations.accept_invitation(actor=UserFactory.create(), token=invite.token)
    assert error.value.reason == "expired"
    assert Invitation.objects.get().accepted_at is None


def test_revoked_invitation_cannot_be_used(admin, invite) -> None:
    invitations.revoke_invitation(actor=admin, invitation_id=invite.invitation.pk)
    assert AuditEvent.objects.get(action="invitation.revoked").outcome == Outcome.SUCCESS
    with pytest.raises(errors.InvitationUnusable) as error:
        invitations.accept_invitation(actor=UserFactory.create(), token=invite.token)
    assert error.value.reason == "revoked"


def test_unknown_token_is_not_found() -> None:
    with pytest.raises(errors.InvitationNotFound):
        invitations.accept_invitation(actor=UserFactory.create(), token="made-up-token")


def test_already_member_does_not_consume_the_invitation(admin, invite) -> None:
    existing = MembershipFactory.create(team=admin.team, role=Role.VIEWER)
    with pytest.raises(errors.AlreadyMember):
        invitations.accept_invitation(actor=existing.user, token=invite.token)
    assert Invitation.objects.get().accepted_at is None
    assert Membership.objects.get(pk=existing.pk).role == Role.VIEWER
    event = AuditEvent.objects.get(action="invitation.accepted")
    assert event.outcome == Outcome.FAILURE
    # Still good for the person it was meant for.
    invitations.accept_invitation(actor=UserFactory.create(), token=invite.token)


def test_accept_view_signed_in(client: Client, invite) -> None:
    user = UserFactory.create()
    client.force_login(user)
    page = client.get(accept_url(invite.token), follow=True)
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert invite.invitation.team.name in html
    assert "Editor" in html
    response = client.post(accept_url(invite.token), follow=True)
    team = invite.invitation.team
    assert response.redirect_chain[0][0] == reverse("teams:overview", args=[team.slug])
    assert f"Welcome to {team.name}!" in response.content.decode()
    assert Membership.objects.get(team=team, user=user).role == Role.EDITOR


def test_accept_view_for_existing_member_explains(client: Client, admin, invite) -> None:
    client.force_login(admin.user)
    page = client.get(accept_url(invite.token), follow=True)
    assert "You are already a member" in page.content.decode()
    response = client.post(accept_url(invite.token), follow=True)
    assert "still works for the person it was meant for" in response.content.decode()
    assert Invitation.objects.get().accepted_at is None


@pytest.mark.parametrize(
    ("spoil", "status", "text"),
    [
        ("expire", 410, "This invitation has expired"),
        ("revoke", 410, "This invitation was revoked"),
        ("use", 410, "This invitation was already used"),
        ("garble", 404, "This invitation link does not work"),
    ],
)
def test_unusable_links_explain_what_to_do(
    client: Client, admin, invite, spoil: str, status: int, text: str
) -> None:
    token = invite.token
    if spoil == "expire":
        Invitation.objects.update(expires_at=timezone.now() - timedelta(days=1))
    elif spoil == "revoke":
        invitations.revoke_invitation(actor=admin, invitation_id=invite.invitation.pk)
    elif spoil == "use":
        invitations.accept_invitation(actor=UserFactory.create(), token=token)
    else:
        token = token[:-4] + "abcd"
    for response in (client.get(accept_url(token), follow=True), client.post(accept_url(token))):
        assert response.status_code == status
        html = response.content.decode()
        assert text in html
        assert "ask an admin of the team for a new invitation link" in html
    client.force_login(UserFactory.create())
    assert client.post(accept_url(token)).status_code == status


# --- Signing up through a link -------------------------------------------------------------------


def signup_data(**overrides: str) -> dict[str, str]:
    data = {
        "username": "newcomer",
        "first_name": "Nia",
        "last_name": "Okafor",
        "email": "nia@example.test",
        "password1": STRONG_PASSWORD,
        "password2": STRONG_PASSWORD,
    }
    data.update(overrides)
    return data


def test_anonymous_sees_signup_form_with_email_prefilled_and_sign_in_link(
    client: Client, invite
) -> None:
    page = client.get(accept_url(invite.token), follow=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Create your account" in html
    assert 'value="sam@example.test"' in html
    # The token stays out of the sign-in link: it waits in the session (test_invitation_links.py).
    assert f"{reverse('accounts:login')}?next=%2Finvitations%2Fjoin%2F" in html
    assert invite.token not in html


def test_signup_creates_account_joins_and_signs_in(client: Client, invite) -> None:
    response = client.post(accept_url(invite.token), signup_data())
    team = invite.invitation.team
    assert response.status_code == 302
    assert response["Location"] == reverse("teams:overview", args=[team.slug])
    user = User.objects.get(username="newcomer")
    assert (user.first_name, user.email) == ("Nia", "nia@example.test")
    assert user.check_password(STRONG_PASSWORD)
    assert Membership.objects.get(team=team, user=user).role == Role.EDITOR
    assert Invitation.objects.get().accepted_by == user
    assert int(client.session["_auth_user_id"]) == user.pk
    page = client.get(response["Location"])
    assert "Your account is ready" in page.content.decode()
    actions = set(AuditEvent.objects.filter(team=team).values_list("action", flat=True))
    assert {"user.created", "invitation.accepted"} <= actions
    assert STRONG_PASSWORD not in str(list(AuditEvent.objects.values_list("details", flat=True)))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password1": "short", "password2": "short"}, "password2"),
        ({"password1": "password123", "password2": "password123"}, "password2"),
        ({"password2": "something-else-entirely"}, "password2"),
        ({"username": ""}, "username"),
        ({"username": "bad name!"}, "username"),
        ({"email": "nope"}, "email"),
    ],
)
def test_signup_validation_keeps_the_invitation(
    client: Client, invite, overrides: dict[str, str], field: str
) -> None:
    response = client.post(accept_url(invite.token), signup_data(**overrides))
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not User.objects.filter(username=overrides.get("username", "newcomer")).exists()
    assert Invitation.objects.get().accepted_at is None


def test_signup_refuses_taken_username_in_any_case(client: Client, invite) -> None:
    UserFactory.create(username="Taken")
    response = client.post(accept_url(invite.token), signup_data(username="taken"))
    assert response.status_code == 200
    assert "already taken" in response.content.decode()
    assert Invitation.objects.get().accepted_at is None


def test_no_account_is_created_through_a_used_link(client: Client, invite) -> None:
    invitations.accept_invitation(actor=UserFactory.create(), token=invite.token)
    response = client.post(accept_url(invite.token), signup_data())
    assert response.status_code == 410
    assert not User.objects.filter(username="newcomer").exists()


def test_existing_user_signs_in_and_returns_to_the_link(client: Client, invite) -> None:
    user = UserFactory.create()
    response = client.post(
        reverse("accounts:login"),
        {"login": user.username, "password": TEST_PASSWORD, "next": accept_url(invite.token)},
    )
    assert response["Location"] == accept_url(invite.token)


# --- Revoking ------------------------------------------------------------------------------------


def test_revoke_view_confirms_then_revokes(client: Client, admin, invite) -> None:
    client.force_login(admin.user)
    url = reverse("teams:invitation-revoke", args=[admin.team.slug, invite.invitation.pk])
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    assert "Revoke invitation</button>" in fragment
    response = client.post(url, follow=True)
    assert "its link no longer works" in response.content.decode()
    assert Invitation.objects.get().revoked_at is not None


def test_revoking_twice_explains(client: Client, admin, invite) -> None:
    invitations.revoke_invitation(actor=admin, invitation_id=invite.invitation.pk)
    with pytest.raises(errors.InvitationUnusable):
        invitations.revoke_invitation(actor=admin, invitation_id=invite.invitation.pk)
    client.force_login(admin.user)
    url = reverse("teams:invitation-revoke", args=[admin.team.slug, invite.invitation.pk])
    assert "nothing to revoke" in client.get(url).content.decode()
    assert "nothing to revoke" in client.post(url, follow=True).content.decode()


def test_another_teams_invitation_is_not_found(client: Client, admin) -> None:
    other_owner = MembershipFactory.create(team=TeamFactory.create(), role=Role.OWNER)
    foreign = invitations.create_invitation(actor=other_owner, role=Role.VIEWER).invitation
    with pytest.raises(errors.InvitationNotFound):
        invitations.revoke_invitation(actor=admin, invitation_id=foreign.pk)
    client.force_login(admin.user)
    url = reverse("teams:invitation-revoke", args=[admin.team.slug, foreign.pk])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert Invitation.objects.get(pk=foreign.pk).revoked_at is None


def test_invitation_list_separates_pending_from_closed_in_constant_queries(
    client: Client, admin, invite, django_assert_num_queries
) -> None:
    used = invitations.create_invitation(actor=admin, role=Role.VIEWER, email="used@example.test")
    invitations.accept_invitation(actor=UserFactory.create(), token=used.token)
    client.force_login(admin.user)
    url = reverse("teams:invitations", args=[admin.team.slug])
    client.get(url)  # the first visit remembers the team in the session
    with django_assert_num_queries(6):
        response = client.get(url)
    assert [i.pk for i in response.context["pending"]] == [invite.invitation.pk]
    assert [i.pk for i in response.context["closed"]] == [used.invitation.pk]
    assert "Accepted" in response.content.decode()
    for _ in range(5):
        invitations.create_invitation(actor=admin, role=Role.VIEWER)
        invitations.accept_invitation(
            actor=UserFactory.create(),
            token=invitations.create_invitation(actor=admin, role=Role.EDITOR).token,
        )
    with django_assert_num_queries(6):
        response = client.get(url)
    assert len(response.context["pending"]) == 6


def test_a_membership_created_concurrently_is_already_a_member_not_a_500(
    invite, admin, monkeypatch
) -> None:
    """Two links to the same team accepted at once: the unique constraint decides, and the
    loser sees the ordinary "already a member" refusal with the link left unused."""
    user = UserFactory.create()
    MembershipFactory.create(team=admin.team, user=user, role=Role.VIEWER)
    # The pre-check runs before the other request's membership became visible.
    real_filter = Membership.objects.filter

    def stale_filter(*args, **kwargs):
        if kwargs.get("user") == user:
            return Membership.objects.none()
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(Membership.objects, "filter", stale_filter)
    with pytest.raises(errors.AlreadyMember):
        invitations.accept_invitation(actor=user, token=invite.token)
    monkeypatch.undo()
    assert Invitation.objects.get(pk=invite.invitation.pk).accepted_at is None
    assert AuditEvent.objects.filter(
        action="invitation.accepted", outcome=Outcome.FAILURE, actor=user
    ).exists()
