"""Headers every page sends: Vary on HX-Request (full page vs fragment), and no-store on
signed-in pages (security finding 7)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from teams.models import Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("htmx", [False, True])
def test_responses_vary_on_hx_request(client: Client, htmx: bool) -> None:
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(reverse("accounts:login"), headers=headers)
    vary = [v.strip().lower() for v in response["Vary"].split(",")]
    assert "hx-request" in vary


def test_redirects_vary_on_hx_request_too(client: Client) -> None:
    response = client.get(reverse("keys:list"))
    assert response.status_code == 302
    assert "hx-request" in response["Vary"].lower()


def _cache_control(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part}


def test_signed_in_pages_are_never_stored(client: Client) -> None:
    membership = MembershipFactory.create(role=Role.OWNER)
    client.force_login(membership.user)
    slug = membership.team.slug
    for url in (
        reverse("teams:overview", args=[slug]),
        reverse("teams:members", args=[slug]),
        reverse("keys:list"),
        reverse("accounts:password-change"),
        "/no-such-page/",  # a 404 for a signed-in person still names their team
    ):
        response = client.get(url)
        assert {"no-store", "private"} <= _cache_control(response), url
    # Fragments and redirects too.
    fragment = client.get(reverse("teams:leave", args=[slug]), headers={"HX-Request": "true"})
    assert "no-store" in _cache_control(fragment)
    redirect = client.get(reverse("teams:home"))
    assert redirect.status_code == 302 and "no-store" in _cache_control(redirect)


def test_anonymous_pages_are_not_marked(client: Client) -> None:
    """Only signed-in answers carry the header (the sign-in form has Django's never_cache)."""
    assert "no-store" not in _cache_control(client.get("/no-such-page/"))
