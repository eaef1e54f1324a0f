"""The page shell (base.html): no navigation before signing in, the navigation marks the
current page, the team switcher lists only my teams, and tables name their cells so they can
stack on phones (how they stack is checked in a browser: tests/e2e/test_ui_polish.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from keys.models import ApiKey
from teams.invitations import create_invitation
from teams.models import Membership, Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _signed_in(client: Client, role: str = Role.OWNER) -> Membership:
    membership = MembershipFactory.create(role=role)
    client.force_login(membership.user)
    return membership


def test_login_page_renders_without_navigation(client: Client) -> None:
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<form class="form" method="post"' in html
    assert 'name="login"' in html and 'name="password"' in html
    assert '<label for="id_login">' in html
    assert "csrfmiddlewaretoken" in html
    assert 'class="topbar"' not in html  # no navigation before signing in
    assert 'href="#main"' in html  # skip link
    assert '<dialog id="modal"' in html


def test_navigation_marks_the_current_page(client: Client) -> None:
    membership = _signed_in(client)
    html = client.get(reverse("teams:members", args=[membership.team.slug])).content.decode()
    members_url = reverse("teams:members", args=[membership.team.slug])
    assert f'<a href="{members_url}" aria-current="page">Members</a>' in html
    overview_url = reverse("teams:overview", args=[membership.team.slug])
    assert f'<a href="{overview_url}">Overview</a>' in html
    assert html.count('aria-current="page"') == 2  # wide nav + compact menu


def test_team_switcher_lists_only_my_teams(client: Client) -> None:
    membership = _signed_in(client)
    other = MembershipFactory.create(user=membership.user, role=Role.VIEWER)
    stranger = MembershipFactory.create()
    html = client.get(reverse("keys:list")).content.decode()
    assert membership.team.name in html
    assert other.team.name in html
    assert stranger.team.name not in html
    # Off a team page, the nav keeps the team last worked in.
    client.get(reverse("teams:overview", args=[other.team.slug]))
    html = client.get(reverse("keys:list")).content.decode()
    assert reverse("teams:members", args=[other.team.slug]) in html
    assert reverse("teams:members", args=[membership.team.slug]) not in html


def test_tables_name_their_cells_for_the_phone_layout(client: Client) -> None:
    membership = _signed_in(client)
    MembershipFactory.create(team=membership.team, role=Role.VIEWER)
    create_invitation(actor=membership, role=Role.EDITOR)
    ApiKey.objects.create(owner=membership.user, label="Studio", last_four="wxyz")
    slug = membership.team.slug
    pages = {
        reverse("teams:members", args=[slug]): ["Role", "Joined", "Change role"],
        reverse("teams:invitations", args=[slug]): ["Role", "Created", "Expires"],
        reverse("keys:list"): ["Key", "Added", "Last verified", "Last used"],
        reverse("teams:team-list"): ["Your role", "Joined"],
    }
    for url, labels in pages.items():
        html = client.get(url).content.decode()
        assert '<table class="table table-stack">' in html, url
        for label in labels:
            assert f'data-label="{label}"' in html, (url, label)


def test_stylesheets_are_linked_one_way_in_the_head_of_base_html() -> None:
    """One way to link CSS: every stylesheet in static/css/ is linked in base.html's <head>,
    and no page or partial links one in its body (the 500 page stands alone: it extends
    nothing, so it links app.css itself)."""
    from django.conf import settings

    root = Path(settings.BASE_DIR)
    base = (root / "templates/base.html").read_text()
    head = base[: base.index("</head>")]
    for css in sorted((root / "static/css").glob("*.css")):
        assert f"{{% static 'css/{css.name}' %}}" in head, css.name
    elsewhere = [
        str(path.relative_to(root))
        for path in sorted((root / "templates").rglob("*.html"))
        if path.name not in {"base.html", "500.html"} and 'rel="stylesheet"' in path.read_text()
    ]
    assert elsewhere == []
