"""The date filters every page uses, so a moment reads the same everywhere (a builtin
library: no `{% load %}` needed).

- `when`: a `<time>` element reading "4 Dec 2026, 14:20 UTC" (the one date format, with the
  time zone); `when:"day"` for a date alone ("4 Dec 2026"), `when:"seconds"` where seconds
  matter (the audit log); `moment` is the same text without the element (a title attribute).
"""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from convai_admin.display import moment_text

register = template.Library()


@register.filter(expects_localtime=False)
def moment(value: datetime | date | None, kind: str = "") -> str:
    """ "4 Dec 2026, 14:20 UTC" (kind "day": "4 Dec 2026", "seconds": with seconds)."""
    if value is None or value == "":
        return ""
    return moment_text(value, kind)


@register.filter(expects_localtime=False)
def when(value: datetime | date | None, kind: str = "") -> SafeString | str:
    """`<time datetime="ISO">4 Dec 2026, 14:20 UTC</time>` (kinds as `moment`)."""
    if value is None or value == "":
        return ""
    iso = value.isoformat()
    if isinstance(value, datetime) and timezone.is_aware(value):
        iso = dateformat.format(timezone.localtime(value), "c")
    return format_html('<time datetime="{}">{}</time>', iso, moment(value, kind))
