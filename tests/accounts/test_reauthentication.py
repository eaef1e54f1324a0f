"""Re-authentication (accounts.decorators.reauthentication_required, over allauth's) before
adding an API key, changing a member's role and exporting the audit log. A session without a
recent sign-in is sent to "Confirm it's you"; a refusal by the policy comes first; a refused
key form is not kept in the session (it holds the key)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from keys.models import ApiKey
from teams.models import Membership, Role
from tests.factories import TEST_PASSWORD, MembershipFactory

pytestmark = [pytest.mark.django_db, pytest.mark.stale_sign_in]

RAW_KEY = "f" * 32


def confirm_url(next_url: str) -> str:
    return f"{reverse('account_reauthenticate')}?{urlencode({'next': next_url})}"


def test_adding_a_key_asks_to_confirm_and_keeps_no_key_in_the_session(client) -> None:
    member = MembershipFactory()
    client.force_login(member.user)
    url = reverse("keys:list")
    assert client.get(url).status_code == 200  # the list itself is not behind it
    response = client.post(url, {"label": "Main", "key": RAW_KEY})
    assert response.status_code == 302
    assert response["Location"] == confirm_url(url)
    assert not ApiKey.objects.exists()
    for session in Session.objects.all():
        assert RAW_KEY not in str(session.get_decoded())
    page = client.get(response["Location"])
    assert "confirm it\N{RIGHT SINGLE QUOTATION MARK}s you first" in page.content.decode()
    # Confirming with the password lets the next submission through.
    back = client.post(reverse("account_reauthenticate"), {"password": TEST_PASSWORD, "next": url})
    assert back["Location"] == url


def test_changing_a_role_asks_to_confirm_then_does_it(client) -> None:
    owner = MembershipFactory(role=Role.OWNER)
    editor = MembershipFactory(team=owner.team, role=Role.EDITOR)
    client.force_login(owner.user)
    url = reverse("teams:member-role", args=[owner.team.slug, editor.pk])
    response = client.post(url, {f"m{editor.pk}-role": "admin"})
    assert response.status_code == 302
    assert response["Location"] == confirm_url(url)
    editor.refresh_from_db()
    assert editor.role == Role.EDITOR  # nothing changed yet
    # allauth replays the refused POST once the owner confirms.
    client.post(reverse("account_reauthenticate"), {"password": TEST_PASSWORD, "next": url})
    assert Membership.objects.get(pk=editor.pk).role == Role.ADMIN


def test_the_policy_refuses_before_asking_to_confirm(client) -> None:
    viewer = MembershipFactory(role=Role.VIEWER)
    editor = MembershipFactory(team=viewer.team, role=Role.EDITOR)
    client.force_login(viewer.user)
    url = reverse("teams:member-role", args=[viewer.team.slug, editor.pk])
    assert client.post(url, {f"m{editor.pk}-role": "admin"}).status_code == 403


def test_exporting_the_audit_log_asks_to_confirm(client) -> None:
    admin = MembershipFactory(role=Role.ADMIN)
    client.force_login(admin.user)
    url = reverse("audit:export-csv", args=[admin.team.slug])
    response = client.get(url)
    assert response["Location"] == confirm_url(url)
    client.post(reverse("account_reauthenticate"), {"password": TEST_PASSWORD, "next": url})
    export = client.get(url)
    assert export.status_code == 200
    assert export["Content-Type"].startswith("text/csv")


def test_a_wrong_password_does_not_confirm(client) -> None:
    admin = MembershipFactory(role=Role.ADMIN)
    client.force_login(admin.user)
    url = reverse("audit:export-csv", args=[admin.team.slug])
    page = client.post(reverse("account_reauthenticate"), {"password": "nope-nope", "next": url})
    assert page.status_code == 200
    assert client.get(url)["Location"] == confirm_url(url)
