from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .selectors import has_api_key


def api_keys(request: HttpRequest) -> dict[str, Any]:
    """`has_api_key`, asked only by templates that use it (the overview's nudge to add one)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"has_api_key": SimpleLazyObject(lambda: has_api_key(user))}
