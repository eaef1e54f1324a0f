"""Template filters of the API keys page."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def checked_ago(moment: datetime | None, now: datetime) -> str:
    """ "just now" for the last minute, else "5 minutes ago" (Django's timesince)."""
    if moment is None:
        return ""
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, now, depth=1)} ago"
