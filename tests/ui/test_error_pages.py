"""The product's own error pages (what `make run` serves now that DEBUG is off there): they
use the shell, and the 404 sends each person somewhere useful."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.template.loader import get_template
from django.test import Client
from django.urls import reverse

from teams.models import Role
from tests.factories import MembershipFactory, UserFactory


def test_error_pages_render_without_request_context() -> None:
    for name in ("500.html", "403_csrf.html"):
        html = get_template(name).render({})
        assert "app.css" in html
        assert "<script>" not in html


def test_the_suite_runs_with_debug_off() -> None:
    """So the pages below are the ones people get, not Django's debug pages."""
    assert settings.DEBUG is False


@pytest.mark.django_db
def test_404_page_uses_the_shell(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "We could not find that page" in html
    assert "app.css" in html
    assert "URLconf" not in html  # not the debug page listing every URL


@pytest.mark.django_db
def test_403_page_uses_the_shell(client: Client) -> None:
    viewer = MembershipFactory.create(role=Role.VIEWER)
    client.force_login(viewer.user)
    response = client.get(reverse("teams:invitations", args=[viewer.team.slug]))
    assert response.status_code == 403
    assert "app.css" in response.content.decode()
    assert response.templates[0].name == "403.html"


@pytest.mark.django_db
def test_404_sends_people_without_a_team_to_their_dashboard(client: Client) -> None:
    client.force_login(UserFactory.create())
    html = client.get("/no-such-page/").content.decode()
    assert "Go to your dashboard" in html and "Go to your team" not in html
    assert f'href="{reverse("teams:home")}"' in html


@pytest.mark.django_db
def test_404_sends_members_back_to_their_team(client: Client) -> None:
    client.force_login(MembershipFactory.create().user)
    html = client.get("/no-such-page/").content.decode()
    assert "Go to your team" in html and "Go to your dashboard" not in html


@pytest.mark.django_db
def test_404_offers_sign_in_when_signed_out(client: Client) -> None:
    html = client.get("/no-such-page/").content.decode()
    assert f'href="{reverse("accounts:login")}">Sign in</a>' in html
