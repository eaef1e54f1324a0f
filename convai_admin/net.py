"""The one place that decides a request's client IP, for login throttling and the audit log.

X-Forwarded-For is only believed when the direct peer is a configured trusted proxy; then the
right-most address that is not itself a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    remote = _valid_ip(request.META.get("REMOTE_ADDR", "") or "")
    trusted = set(settings.TRUSTED_PROXIES)
    if remote is None or remote not in trusted:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop for hop in (_valid_ip(part) for part in forwarded.split(",")) if hop]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return remote


def axes_client_ip(request: HttpRequest, *args: Any, **kwargs: Any) -> str | None:
    """django-axes calls this (AXES_CLIENT_IP_CALLABLE)."""
    return client_ip(request)
