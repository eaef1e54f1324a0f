"""Invitations by email through a real SMTP server (tests.support.smtp), failures that lose
nothing, and invitation links whose token leaves the URL on the first GET."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from teams import invitations
from teams.models import Invitation, Membership, Role, Team
from tests.factories import MembershipFactory, UserFactory
from tests.support.smtp import SMTPServer

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver/invitations/([A-Za-z0-9_-]{40,})/")


@pytest.fixture
def admin(team: Team) -> Membership:
    MembershipFactory.create(team=team, role=Role.OWNER)
    return MembershipFactory.create(team=team, role=Role.ADMIN)


def _invite(client: Client, team: Team, email: str = "sam@example.test") -> Any:
    return client.post(
        reverse("teams:invitation-create", args=[team.slug]),
        {"role": Role.EDITOR.value, "email": email},
    )


def test_the_link_is_emailed_and_shown(
    client: Client, team: Team, admin: Membership, smtp_server: SMTPServer
) -> None:
    client.force_login(admin.user)
    form = client.get(reverse("teams:invitation-create", args=[team.slug])).content.decode()
    assert "We email the link to this address" in form
    page = _invite(client, team).content.decode()
    assert "We emailed the link to <strong>sam@example.test</strong>" in page
    [mail] = smtp_server.messages
    assert smtp_server.recipients() == [["sam@example.test"]]
    assert (
        mail["Subject"] == f"{admin.user.display_name} invited you to {team.name} on Convai Admin"
    )
    body = smtp_server.body(mail)
    match = LINK.search(body)
    assert match is not None
    token = match.group(1)
    assert match.group(0) in page  # the same link, also shown to copy
    invitation = Invitation.objects.get()
    assert invitations.hash_token(token) == invitation.token_hash
    assert "as Editor" in body
    event = AuditEvent.objects.get(action="invitation.emailed")
    assert event.outcome == Outcome.SUCCESS
    assert event.target_id == str(invitation.pk)
    assert token not in str(event.details) and token not in event.target_label


def test_a_refused_mail_is_shown_and_the_invitation_kept(
    client: Client, team: Team, admin: Membership, smtp_server: SMTPServer
) -> None:
    smtp_server.refuse = True
    client.force_login(admin.user)
    page = _invite(client, team).content.decode()
    assert "The email to sam@example.test could not be sent:" in page
    assert "the mail server answered 554" in page
    assert LINK.search(page) is not None  # the link to copy instead
    invitation = Invitation.objects.get()
    assert invitation.is_pending
    event = AuditEvent.objects.get(action="invitation.emailed")
    assert event.outcome == Outcome.FAILURE
    assert event.details == {"email": "sam@example.test", "problem": "the mail server answered 554"}


def test_an_unreachable_mail_server_is_shown(
    client: Client, team: Team, admin: Membership, settings: Any
) -> None:
    with socket.socket() as closed:  # a loopback port with nobody listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    client.force_login(admin.user)
    page = _invite(client, team).content.decode()
    assert "the mail server could not be reached" in page
    assert Invitation.objects.get().is_pending


def test_without_email_configured_nothing_is_sent(
    client: Client, team: Team, admin: Membership
) -> None:
    client.force_login(admin.user)
    form = client.get(reverse("teams:invitation-create", args=[team.slug])).content.decode()
    assert "No email is sent: you copy the link" in form
    page = _invite(client, team).content.decode()
    assert "We emailed" not in page and "could not be sent" not in page
    assert not AuditEvent.objects.filter(action="invitation.emailed").exists()


def test_no_mail_without_an_address(
    client: Client, team: Team, admin: Membership, smtp_server: SMTPServer
) -> None:
    client.force_login(admin.user)
    _invite(client, team, email="")
    assert smtp_server.messages == []


# --- The token leaves the URL ---------------------------------------------------------------------


def test_the_first_get_moves_the_token_into_the_session(client: Client, admin: Membership) -> None:
    link = invitations.create_invitation(actor=admin, role=Role.VIEWER)
    first = client.get(reverse("teams:invitation-accept", kwargs={"token": link.token}))
    assert first.status_code == 302
    assert first["Location"] == reverse("teams:invitation-join")
    assert first["Referrer-Policy"] == "strict-origin"
    page = client.get(first["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert link.token not in html  # not in the form's action, nor the sign-in link
    assert 'action="/invitations/join/"' in html
    assert page["Referrer-Policy"] == "strict-origin"


def test_joining_from_the_token_free_url(client: Client, admin: Membership) -> None:
    link = invitations.create_invitation(actor=admin, role=Role.VIEWER)
    joiner = UserFactory.create()
    client.force_login(joiner)
    client.get(reverse("teams:invitation-accept", kwargs={"token": link.token}))
    response = client.post(reverse("teams:invitation-join"))
    assert response.status_code == 302
    assert Membership.objects.filter(team=admin.team, user=joiner, role=Role.VIEWER).exists()
    assert "invitation_token" not in client.session
    # The used link is gone from the session: the join page no longer knows an invitation.
    assert client.get(reverse("teams:invitation-join")).status_code == 404


def test_the_join_url_without_a_link_opened_says_what_to_do(client: Client) -> None:
    page = client.get(reverse("teams:invitation-join"))
    assert page.status_code == 404
    assert "Open the link from your invitation again" in page.content.decode()


def test_the_token_survives_signing_in(client: Client, admin: Membership) -> None:
    link = invitations.create_invitation(actor=admin, role=Role.VIEWER)
    joiner = UserFactory.create()
    client.get(reverse("teams:invitation-accept", kwargs={"token": link.token}))
    client.force_login(joiner)  # Django's login keeps the session's data (a new key)
    page = client.get(reverse("teams:invitation-join"))
    assert page.status_code == 200
    assert admin.team.name in page.content.decode()
