"""Invitation links carry a secret token and the sign-up form a new password: neither may
travel on in a Referer header, nor reach the error report Django sends when a request crashes."""

from __future__ import annotations

import sys

import pytest
from django.core.signals import got_request_exception
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from accounts.models import User
from teams import invitations
from teams.models import Membership, Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "violet-harbor-lantern-42"


@pytest.fixture
def invite(team) -> invitations.CreatedInvitation:
    MembershipFactory.create(team=team, role=Role.OWNER)
    admin: Membership = MembershipFactory.create(team=team, role=Role.ADMIN)
    return invitations.create_invitation(actor=admin, role=Role.EDITOR)


def accept_url(token: str) -> str:
    return reverse("teams:invitation-accept", kwargs={"token": token})


def signup(**overrides: str) -> dict[str, str]:
    data = {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD}
    data.update(overrides)
    return data


@pytest.mark.parametrize("signed_in", [False, True])
def test_the_invitation_page_sends_only_the_origin_as_referrer(
    client: Client, invite, signed_in: bool
) -> None:
    if signed_in:
        client.force_login(UserFactory.create())
    page = client.get(accept_url(invite.token), follow=True)
    assert page.status_code == 200
    assert page["Referrer-Policy"] == "strict-origin"


def test_an_unusable_link_sends_only_the_origin_too(client: Client) -> None:
    page = client.get(accept_url("not-a-real-token"), follow=True)
    assert page.status_code == 404
    assert page["Referrer-Policy"] == "strict-origin"


def test_signup_passwords_are_hidden_from_error_reports(client: Client, invite) -> None:
    response = client.post(accept_url(invite.token), signup(password2="mismatch-0987654"))
    assert response.status_code == 200
    shown = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert set(shown["password1"]) == {"*"}
    assert set(shown["password2"]) == {"*"}
    assert shown["username"] == "newcomer"


def test_a_crash_while_signing_up_leaks_no_password_into_the_report(
    invite, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> Membership:
        raise RuntimeError("disk on fire")

    reports: list[str] = []

    def report(sender: object, request: HttpRequest, **kwargs: object) -> None:
        reporter = ExceptionReporter(request, *sys.exc_info())
        reports.extend([reporter.get_traceback_text(), reporter.get_traceback_html()])

    monkeypatch.setattr(invitations, "_consume", explode)
    got_request_exception.connect(report)
    try:
        crashing = Client(raise_request_exception=False)
        response = crashing.post(accept_url(invite.token), signup())
    finally:
        got_request_exception.disconnect(report)

    assert response.status_code == 500
    assert reports and "disk on fire" in reports[0]
    for text in reports:
        assert PASSWORD not in text
    assert not User.objects.filter(username="newcomer").exists()
