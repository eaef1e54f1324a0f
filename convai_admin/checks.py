"""Project-wide system checks (registered by convai_admin.apps.ConvaiAdminConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


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
