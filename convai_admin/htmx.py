"""One rule for every page that htmx can also ask for in pieces."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def render_page(
    request: HttpRequest, template: str, context: dict[str, Any], *, partial: str
) -> HttpResponse:
    """The named partial when htmx asked (e.g. a confirmation loaded into the dialog), the
    whole page otherwise, so the same URL works with and without JavaScript."""
    name = f"{template}#{partial}" if getattr(request, "htmx", False) else template
    return render(request, name, context)
