"""Fixtures for the character service tests: the real client, through the real key services,
against the live sandbox over HTTP.

`sandbox` points the product's Convai base URL at the live server's sandbox; `add_key` gives a
member a verified key of a fresh sandbox key (optionally of a named sandbox account, so several
keys see the same characters); `create` makes a character through the service."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Any

import pytest

from characters import services
from keys.services import add_api_key
from sandbox.services import create_sandbox_key
from teams.models import Membership, Role
from tests.characters.support import BACKSTORY, Key

_labels = count(1)


@pytest.fixture
def add_key(sandbox: str) -> Callable[..., Key]:
    """add_key(member, label="Studio key", account=None) -> Key, verified over HTTP."""

    def add(member: Membership, label: str = "Studio key", *, account: str | None = None) -> Key:
        sandbox_label = f"{label}-{next(_labels)}"
        raw = create_sandbox_key(sandbox_label, account=account)
        api_key = add_api_key(actor=member.user, label=label, raw_key=raw)
        assert api_key.verified_at is not None
        return Key(api_key, raw, sandbox_label)

    return add


@pytest.fixture
def editor(make_member: Callable[..., Membership], sandbox: str) -> Membership:
    return make_member(Role.EDITOR)


@pytest.fixture
def editor_key(add_key: Callable[..., Key], editor: Membership) -> Key:
    return add_key(editor, "Editor key")


@pytest.fixture
def create(editor: Membership, editor_key: Key) -> Callable[..., services.Saved]:
    """create(actor=editor, key=editor_key, **fields) through the service."""

    def make(
        actor: Membership | None = None, key: Key | None = None, **fields: Any
    ) -> services.Saved:
        values: dict[str, Any] = {
            "name": "Raymond",
            "voice_type": "MALE",
            "backstory": BACKSTORY,
            "actions": ["Wave", "Sit"],
            "language_codes": [],
        }
        values.update(fields)
        return services.create_character(
            actor=actor or editor, api_key_id=(key or editor_key).pk, **values
        )

    return make
