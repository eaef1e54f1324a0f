"""Helpers for the character service tests (their fixtures, `Key`, `BACKSTORY` and
`record_requests` are in tests/support/characters.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audit.models import AuditEvent
from characters.errors import ConvaiFailed
from characters.models import Character
from sandbox.models import SandboxCharacter
from tests.support.characters import Key
from tests.support.sandbox import wait_for_live_server


def remote(character: Character | str) -> SandboxCharacter:
    """The sandbox's stored copy of a character."""
    convai_id = character if isinstance(character, str) else character.convai_id
    return SandboxCharacter.objects.get(character_id=convai_id)


def events(action: str = "", **filters: Any) -> list[AuditEvent]:
    """Audit events, oldest first."""
    queryset = AuditEvent.objects.filter(target_type="character", **filters)
    if action:
        queryset = queryset.filter(action=action)
    return list(queryset.order_by("id"))


def expect_failure(call: Callable[[], object]) -> ConvaiFailed:
    """Run a call that times out; return its ConvaiFailed once the live server is done with it.

    The traceback (and the transport error behind it) holds the timed-out socket open: dropped
    here, then the live server's threads are waited for (they must not touch the test database
    later)."""
    try:
        call()
    except ConvaiFailed as error:
        failure = error
    else:
        raise AssertionError("the call did not fail")
    failure.__traceback__ = failure.__context__ = failure.__cause__ = None
    wait_for_live_server()
    return failure


def key_shown(event: AuditEvent, key: Key) -> bool:
    """The event names the key used as its label and last four (under whatever detail name:
    the audit log blanks a detail called `key`, so the name is not pinned here)."""
    label = f"{key.api_key.label} (…{key.raw[-4:]})"
    return label in event.details.values()
