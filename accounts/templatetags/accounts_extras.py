"""Template filters of the account pages."""

from __future__ import annotations

from django import template

register = template.Library()

# Checked in order: Edge and Opera say "Chrome" too, Chrome says "Safari" too.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


@register.filter
def device(user_agent: str) -> str:
    """ "Chrome on Linux" from a User-Agent header; "Unknown device" when it says nothing we
    know (the full header is shown beside it)."""
    agent = user_agent or ""
    browser = next((name for token, name in _BROWSERS if token in agent), "")
    system = next((name for token, name in _SYSTEMS if token in agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"
