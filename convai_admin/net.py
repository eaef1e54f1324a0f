"""The one place that decides a request's client IP, for login throttling and the audit log.

X-Forwarded-For is only believed when the direct peer is a configured trusted proxy
(CONVAI_ADMIN_TRUSTED_PROXIES: addresses or networks, "10.0.0.2,172.18.0.0/16"); then the
right-most address that is not itself a trusted proxy is the client. gunicorn believes
X-Forwarded-Proto from the same list (deploy/gunicorn.conf.py).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """The trusted proxies as networks (an address is a /32 or /128). A malformed entry is
    refused when settings load (convai_admin.checks), so it is skipped here."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _trusted(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest) -> str | None:
    remote = _valid_ip(request.META.get("REMOTE_ADDR", "") or "")
    if remote is None or not _trusted(remote):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop for hop in (_valid_ip(part) for part in forwarded.split(",")) if hop]
    for hop in reversed(hops):
        if not _trusted(hop):
            return hop
    return remote
