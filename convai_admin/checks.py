"""Project-wide system checks (registered by convai_admin.apps.ConvaiAdminConfig.ready)."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def sandbox_off_in_production(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The sandbox is an unauthenticated fake of the Convai API under /sandbox/: fine on a
    laptop (`make run`), never on a server."""
    if settings.CONVAI_SANDBOX and not settings.DEBUG:
        return [
            Warning(
                "CONVAI_SANDBOX is on with DEBUG off: the offline Convai emulator is served "
                "at /sandbox/ to anyone who can reach this server.",
                hint="Unset CONVAI_SANDBOX (or set it to 0) in production.",
                id="convai_admin.W001",
            )
        ]
    return []


@register(Tags.security)
def trusted_proxies_are_addresses(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A typo in CONVAI_ADMIN_TRUSTED_PROXIES would silently trust nobody (every client then
    has the proxy's IP: one shared sign-in limit) or, worse, be read some other way."""
    wrong = []
    for entry in settings.TRUSTED_PROXIES:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            wrong.append(entry)
    if wrong:
        return [
            Error(
                f"CONVAI_ADMIN_TRUSTED_PROXIES has entries that are not IP addresses or "
                f"networks: {', '.join(wrong)}.",
                hint="List the proxies' addresses or networks, comma-separated "
                "(10.0.0.2,172.18.0.0/16).",
                id="convai_admin.E001",
            )
        ]
    return []
