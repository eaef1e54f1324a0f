"""The UI shell: strict CSP, no inline script or style in any template, Vary on HX-Request,
the sign-in page, and htmx served from django_htmx's own static files."""

from __future__ import annotations

import re
from pathlib import Path

import django_htmx
import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Role
from tests.factories import MembershipFactory

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"
TEMPLATE_FILES = sorted(p for p in TEMPLATES_DIR.rglob("*.html") if p.is_file())

# <script ...> without a src attribute is an inline script.
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
STYLE_TAG = re.compile(r"<style\b", re.IGNORECASE)
STYLE_ATTR = re.compile(r"\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER_ATTR = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)
HX_EVAL = re.compile(r"\s(hx-on[:\w-]*|hx-vars)\s*=", re.IGNORECASE)


def _relative(path: Path) -> str:
    return str(path.relative_to(TEMPLATES_DIR))


def test_templates_exist_to_scan() -> None:
    assert TEMPLATES_DIR / "base.html" in TEMPLATE_FILES


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=_relative)
def test_template_has_no_inline_script_or_style(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for match in SCRIPT_TAG.finditer(text):
        assert "src=" in match.group(1), f"inline <script> in {_relative(path)}"
        assert "://" not in match.group(1), f"script from another origin in {_relative(path)}"
    assert not STYLE_TAG.search(text), f"<style> block in {_relative(path)}"
    assert not STYLE_ATTR.search(text), f"style= attribute in {_relative(path)}"
    assert not EVENT_HANDLER_ATTR.search(text), f"inline on*= handler in {_relative(path)}"
    assert not JS_URL.search(text), f"javascript: URL in {_relative(path)}"
    assert not HX_EVAL.search(text), f"hx-on/hx-vars (needs eval) in {_relative(path)}"


def test_scanner_catches_what_it_should() -> None:
    """Guard the guard: each pattern matches the thing it is meant to forbid."""
    assert SCRIPT_TAG.search("<script>alert(1)</script>")
    assert "src=" not in SCRIPT_TAG.search("<script>alert(1)</script>").group(1)  # type: ignore[union-attr]
    assert STYLE_TAG.search("<STYLE>p{}</STYLE>")
    assert STYLE_ATTR.search('<p style="color:red">')
    assert EVENT_HANDLER_ATTR.search('<button onclick="x()">')
    assert not EVENT_HANDLER_ATTR.search('<button data-close-dialog type="button">')
    assert JS_URL.search('<a href="javascript:void(0)">')
    assert HX_EVAL.search('<div hx-on:click="x()">')


def _csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


@pytest.mark.django_db
def test_csp_header_is_strict(client: Client) -> None:
    response = client.get(reverse("login"))
    header = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in header
    assert "'unsafe-eval'" not in header
    directives = _csp_directives(header)
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_csp_header_on_signed_in_pages(client: Client) -> None:
    membership = MembershipFactory.create(role=Role.OWNER)
    client.force_login(membership.user)
    response = client.get(reverse("team_overview", args=[membership.team.slug]))
    assert response.status_code == 200
    header = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True])
def test_responses_vary_on_hx_request(client: Client, htmx: bool) -> None:
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(reverse("login"), headers=headers)
    vary = [v.strip().lower() for v in response["Vary"].split(",")]
    assert "hx-request" in vary


@pytest.mark.django_db
def test_redirects_vary_on_hx_request_too(client: Client) -> None:
    response = client.get(reverse("api_keys"))
    assert response.status_code == 302
    assert "hx-request" in response["Vary"].lower()


@pytest.mark.django_db
def test_login_page_renders_without_navigation(client: Client) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<form class="form" method="post"' in html
    assert 'name="username"' in html and 'name="password"' in html
    assert '<label for="id_username">' in html
    assert "csrfmiddlewaretoken" in html
    assert 'class="topbar"' not in html  # no navigation before signing in
    assert 'href="#main"' in html  # skip link
    assert '<dialog id="modal"' in html


@pytest.mark.django_db
def test_wrong_password_shows_an_error(client: Client) -> None:
    membership = MembershipFactory.create()
    response = client.post(
        reverse("login"), {"username": membership.user.username, "password": "nope-nope-nope"}
    )
    assert response.status_code == 200
    assert 'class="alert alert-error"' in response.content.decode()


@pytest.mark.django_db
def test_lockout_page_after_five_failures(client: Client) -> None:
    membership = MembershipFactory.create()
    data = {"username": membership.user.username, "password": "wrong-password-1"}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(reverse("login"), data).status_code == 200
    response = client.post(reverse("login"), data)
    assert response.status_code == 429
    assert "Too many failed sign-ins; try again in 15 minutes." in response.content.decode()


def test_htmx_comes_from_django_htmx_static_files() -> None:
    found = finders.find("django_htmx/htmx-2.min.js")
    assert found, "django_htmx's htmx-2.min.js is not found by the static finders"
    package_dir = Path(django_htmx.__file__).resolve().parent
    assert Path(found).resolve().is_relative_to(package_dir)
    # No copied htmx in the project's own static files.
    own_static = Path(settings.BASE_DIR) / "static"
    assert not [p for p in own_static.rglob("*htmx*") if p.is_file()]


@pytest.mark.django_db
def test_page_loads_htmx_and_app_js_from_own_origin(client: Client) -> None:
    html = client.get(reverse("login")).content.decode()
    sources = re.findall(r'<script src="([^"]+)"', html)
    assert sources == ["/static/django_htmx/htmx-2.min.js", "/static/js/app.js"]
    assert '"allowEval": false' in html
    assert '"includeIndicatorStyles": false' in html
    assert '"allowScriptTags": false' in html
    assert '"historyCacheSize": 0' in html


def _signed_in(client: Client, role: str = Role.OWNER) -> Membership:
    membership = MembershipFactory.create(role=role)
    client.force_login(membership.user)
    return membership


@pytest.mark.django_db
def test_navigation_marks_the_current_page(client: Client) -> None:
    membership = _signed_in(client)
    html = client.get(reverse("team_members", args=[membership.team.slug])).content.decode()
    members_url = reverse("team_members", args=[membership.team.slug])
    assert f'<a href="{members_url}" aria-current="page">Members</a>' in html
    overview_url = reverse("team_overview", args=[membership.team.slug])
    assert f'<a href="{overview_url}">Overview</a>' in html
    assert html.count('aria-current="page"') == 2  # wide nav + compact menu


@pytest.mark.django_db
def test_team_switcher_lists_only_my_teams(client: Client) -> None:
    membership = _signed_in(client)
    other = MembershipFactory.create(user=membership.user, role=Role.VIEWER)
    stranger = MembershipFactory.create()
    html = client.get(reverse("api_keys")).content.decode()
    assert membership.team.name in html
    assert other.team.name in html
    assert stranger.team.name not in html
    # Off a team page, the nav keeps the team last worked in.
    client.get(reverse("team_overview", args=[other.team.slug]))
    html = client.get(reverse("api_keys")).content.decode()
    assert reverse("team_members", args=[other.team.slug]) in html
    assert reverse("team_members", args=[membership.team.slug]) not in html


def test_messages_render_as_dismissible_alerts() -> None:
    from django.contrib.messages import constants
    from django.contrib.messages.storage.base import Message
    from django.template.loader import get_template

    messages = [
        Message(constants.SUCCESS, "Key saved."),
        Message(constants.ERROR, "Convai did not answer. Try again in a minute."),
    ]
    html = get_template("includes/messages.html").render({"messages": messages})
    assert 'id="messages"' in html
    assert '<div class="alert alert-success" role="status">' in html
    assert '<div class="alert alert-error" role="alert">' in html
    assert html.count("data-dismiss-alert") == 2
    assert "hx-swap-oob" not in html
    oob = get_template("includes/messages.html").render({"messages": messages, "oob": True})
    assert 'hx-swap-oob="innerHTML"' in oob


def test_error_pages_render_without_request_context() -> None:
    from django.template.loader import get_template

    for name in ("500.html", "403_csrf.html"):
        html = get_template(name).render({})
        assert "app.css" in html
        assert "<script>" not in html


@pytest.mark.django_db
def test_404_page_uses_the_shell(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "We could not find that page" in html
    assert "app.css" in html
