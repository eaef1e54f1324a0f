"""The strict CSP: no inline script or style in any template, a strict header on every page,
and scripts only from our own origin (htmx from django_htmx's own static files)."""

from __future__ import annotations

import re
from pathlib import Path

import django_htmx
import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from teams.models import Role
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
    inline = SCRIPT_TAG.search("<script>alert(1)</script>")
    assert inline is not None and "src=" not in inline.group(1)
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
    header = client.get(reverse("accounts:login"))["Content-Security-Policy"]
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
    response = client.get(reverse("teams:overview", args=[membership.team.slug]))
    assert response.status_code == 200
    header = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header


def test_htmx_comes_from_django_htmx_static_files() -> None:
    found = finders.find("django_htmx/htmx-2.min.js")
    assert found, "django_htmx's htmx-2.min.js is not found by the static finders"
    package_dir = Path(django_htmx.__file__).resolve().parent
    assert Path(str(found)).resolve().is_relative_to(package_dir)
    # No copied htmx in the project's own static files.
    own_static = Path(settings.BASE_DIR) / "static"
    assert not [p for p in own_static.rglob("*htmx*") if p.is_file()]


@pytest.mark.django_db
def test_page_loads_htmx_and_app_js_from_own_origin(client: Client) -> None:
    html = client.get(reverse("accounts:login")).content.decode()
    sources = re.findall(r'<script src="([^"]+)"', html)
    assert sources[:2] == ["/static/django_htmx/htmx-2.min.js", "/static/js/app.js"]
    assert all(source.startswith("/static/") for source in sources), sources
    assert '"allowEval": false' in html
    assert '"includeIndicatorStyles": false' in html
    assert '"allowScriptTags": false' in html
    assert '"historyCacheSize": 0' in html
