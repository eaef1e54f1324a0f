"""What the character, job and audit tests share (a pytest plugin, registered in
tests/conftest.py): a member's verified sandbox key (`Key`, `add_key`), an Editor with a key,
`create` (a character through the service), a spy on the real client (`record_requests`),
and a backstory. The real client, through the real key services, against the live sandbox
over HTTP (`sandbox` from tests/support/sandbox.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest

from characters import services
from convai.client import ConvaiClient
from keys.models import ApiKey
from keys.services import add_api_key
from sandbox.services import create_sandbox_key
from teams.models import Membership, Role

BACKSTORY = "Raymond Reddington is a criminal mastermind.\nHe surrenders to the FBI."


@dataclass(frozen=True)
class Key:
    """A member's stored key, the plaintext the sandbox issued, and the sandbox label (faults
    and revocation target a key by its sandbox label)."""

    api_key: ApiKey
    raw: str
    sandbox_label: str

    @property
    def pk(self) -> Any:
        return self.api_key.pk


def record_requests(monkeypatch: Any) -> list[tuple[str, dict[str, Any]]]:
    """Spy on the real client: every (path, JSON body) it sends from now on, still sent."""
    sent: list[tuple[str, dict[str, Any]]] = []
    real_call = ConvaiClient._call

    def spy(self: ConvaiClient, method: str, path: str, body: Any, **options: Any) -> Any:
        sent.append((path, dict(body or {})))
        return real_call(self, method, path, body, **options)

    monkeypatch.setattr(ConvaiClient, "_call", spy)
    return sent


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
