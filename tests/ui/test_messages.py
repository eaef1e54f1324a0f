"""Flash messages render as dismissible alerts in #messages, the target pages jump to after an
action (that they stay visible below the sticky top bar: tests/e2e/test_messages.py)."""

from __future__ import annotations

from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.template.loader import get_template


def test_messages_render_as_dismissible_alerts() -> None:
    messages = [
        Message(constants.SUCCESS, "Key saved."),
        Message(constants.ERROR, "Convai did not answer. Try again in a minute."),
    ]
    html = get_template("includes/messages.html").render({"messages": messages})
    assert 'id="messages"' in html
    assert '<div class="alert alert-success" role="status">' in html
    assert '<div class="alert alert-error" role="alert">' in html
    assert html.count("data-dismiss-alert") == 2
    assert "hx-swap-oob" not in html
