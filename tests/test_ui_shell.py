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


# ---- Rough edges from the browser walkthrough ------------------------------------------------


@pytest.mark.django_db
def test_member_invitation_and_key_tables_stack_on_phones(client: Client) -> None:
    """Each cell of a stacking table names itself, so the card layout below 640 px reads."""
    from accounts.models import ApiKey
    from accounts.services import create_invitation

    membership = _signed_in(client)
    MembershipFactory.create(team=membership.team, role=Role.VIEWER)
    create_invitation(membership, Role.EDITOR)
    ApiKey.objects.create(owner=membership.user, label="Studio", last_four="wxyz")
    slug = membership.team.slug
    pages = {
        reverse("team_members", args=[slug]): ["Role", "Joined", "Change role"],
        reverse("team_invitations", args=[slug]): ["Role", "Created", "Expires"],
        reverse("api_keys"): ["Key", "Added", "Last verified", "Last used"],
        reverse("team_list"): ["Your role", "Joined"],
    }
    for url, labels in pages.items():
        html = client.get(url).content.decode()
        assert '<table class="table table-stack">' in html, url
        for label in labels:
            assert f'data-label="{label}"' in html, (url, label)
    css = (Path(settings.BASE_DIR) / "static/css/app.css").read_text(encoding="utf-8")
    assert "@media (max-width: 640px)" in css
    assert "content: attr(data-label)" in css


@pytest.mark.django_db
def test_invitation_link_page_has_a_copy_button_that_needs_script(client: Client) -> None:
    membership = _signed_in(client)
    response = client.post(
        reverse("invitation_create", args=[membership.team.slug]), {"role": "editor"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    # Rendered hidden: app.js shows it, so without script no button does nothing.
    assert (
        '<button class="btn btn-secondary" type="button" data-copy-target="#invitation-link" '
        "hidden>Copy link</button>"
    ) in html
    assert 'id="invitation-link"' in html and "data-select-on-focus" in html
    assert "data-copy-status" in html and 'aria-live="polite"' in html
    assert "Select the text" not in html
    script = (Path(settings.BASE_DIR) / "static/js/app.js").read_text(encoding="utf-8")
    assert "[data-copy-target]" in script and "navigator.clipboard" in script


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "manages", "text"),
    [
        (Role.OWNER, True, "as an Owner you set everyone's role"),
        (Role.ADMIN, True, "you set Editors' and Viewers' roles; Owners set Admins and Owners"),
        (Role.EDITOR, False, "Your role is set by the team's Admins and Owners."),
        (Role.VIEWER, False, "Your role is set by the team's Admins and Owners."),
    ],
)
def test_overview_says_who_sets_roles_for_my_role(
    client: Client, role: str, manages: bool, text: str
) -> None:
    membership = _signed_in(client, role)
    html = client.get(reverse("team_overview", args=[membership.team.slug])).content.decode()
    assert text in html
    assert "Roles are set by the team's admins and owners." not in html
    members_url = reverse("team_members", args=[membership.team.slug])
    manage_link = f'<a href="{members_url}">Manage roles on the Members page</a>'
    assert (manage_link in html) is manages


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OWNER, Role.EDITOR])
def test_overview_prompts_for_an_api_key_until_there_is_one(client: Client, role: str) -> None:
    from accounts.models import ApiKey

    membership = _signed_in(client, role)
    url = reverse("team_overview", args=[membership.team.slug])
    prompt = "Add your Convai API key so you can create and import characters."
    html = client.get(url).content.decode()
    assert prompt in html
    assert f'<a href="{reverse("api_keys")}#add-key">Add your API key</a>' in html
    ApiKey.objects.create(owner=membership.user, label="Studio", last_four="wxyz")
    assert prompt not in client.get(url).content.decode()


@pytest.mark.django_db
def test_viewers_are_not_prompted_for_a_key(client: Client) -> None:
    """Viewers act on nothing, so a key would not help them."""
    membership = _signed_in(client, Role.VIEWER)
    html = client.get(reverse("team_overview", args=[membership.team.slug])).content.decode()
    assert "Add your Convai API key" not in html


HELP_BLOCK = re.compile(r'<div class="help" id="id_(\w+)_helptext">(.*?)</div>', re.DOTALL)


def _password_help(html: str, field: str) -> str:
    blocks = {name: body for name, body in HELP_BLOCK.findall(html)}
    assert f'aria-describedby="id_{field}_helptext"' in html
    return " ".join(blocks[field].split())


@pytest.mark.django_db
def test_password_rules_read_the_same_on_sign_up_and_change_password(client: Client) -> None:
    from accounts.services import create_invitation

    inviter = MembershipFactory.create(role=Role.ADMIN)
    token = create_invitation(inviter, Role.EDITOR).token
    signup = client.get(reverse("invitation_accept", kwargs={"token": token})).content.decode()
    _signed_in(client)
    change = client.get(reverse("password_change")).content.decode()
    rules = _password_help(signup, "password1")
    assert rules == _password_help(change, "new_password1")
    assert rules.startswith("Your password must: <ul>")
    # The wording follows the configured validators: a new validator or another minimum
    # length must be reflected in includes/password_help.html.
    from django.contrib.auth import password_validation

    validators = password_validation.get_default_password_validators()
    assert sorted(type(v).__name__ for v in validators) == [
        "CommonPasswordValidator",
        "MinimumLengthValidator",
        "NumericPasswordValidator",
        "UserAttributeSimilarityValidator",
    ]
    minimum = next(
        v.min_length
        for v in validators
        if isinstance(v, password_validation.MinimumLengthValidator)
    )
    assert f"have at least {minimum} characters" in rules


@pytest.mark.django_db
def test_404_sends_people_without_a_team_to_their_dashboard(client: Client) -> None:
    from tests.factories import UserFactory

    client.force_login(UserFactory.create())
    html = client.get("/no-such-page/").content.decode()
    assert "Go to your dashboard" in html and "Go to your team" not in html
    assert f'href="{reverse("home")}"' in html


@pytest.mark.django_db
def test_404_sends_members_back_to_their_team(client: Client) -> None:
    _signed_in(client)
    html = client.get("/no-such-page/").content.decode()
    assert "Go to your team" in html and "Go to your dashboard" not in html


@pytest.mark.django_db
def test_404_offers_sign_in_when_signed_out(client: Client) -> None:
    html = client.get("/no-such-page/").content.decode()
    assert f'href="{reverse("login")}">Sign in</a>' in html
