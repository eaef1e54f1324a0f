"""Secret-bearing values in Convai's payload (a custom LLM's API key, an MCP server's headers, a
function's source code) never reach our snapshots, revisions or audit log.

The sandbox stores only the documented fields, so the secrets are added to the real get
answer (everything else goes over HTTP to the sandbox)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from audit.models import AuditEvent
from characters import copying, importing, services
from characters.models import Character, Revision
from characters.remote import REDACTED, redact
from convai.client import ConvaiClient
from convai.types import CharacterDetails
from teams.models import Membership
from tests.support.characters import Key

Create = Callable[..., services.Saved]
SECRET = "SECRET-7f3a"

EXTRAS: dict[str, Any] = {
    "model_details": {
        "llm_provider": "custom",
        "api_key": f"sk-live-{SECRET}",
        "endpoint": "https://llm.example.test/v1",
    },
    "mcp_servers": [
        {
            "name": "inventory",
            "url": "https://mcp.example.test",
            "headers": {"Authorization": f"Bearer {SECRET}"},
        }
    ],
    "functions": [
        {"name": "open_door", "source_code": f"def open_door(): return '{SECRET}'"},
        {"name": "lookup", "config": {"Auth-Header": SECRET, "Client_Secret": SECRET}},
    ],
    "narrative": {"token": SECRET, "password": SECRET, "private_key": SECRET},
}


# --- redact --------------------------------------------------------------------------------------


def test_redact_replaces_every_secret_bearing_value_at_any_depth() -> None:
    payload = {"character_id": "c1", "character_name": "Raymond", **copy.deepcopy(EXTRAS)}
    original = copy.deepcopy(payload)

    clean = redact(payload)

    assert SECRET not in json.dumps(clean)
    assert payload == original  # a copy: the input is left alone
    assert clean["character_name"] == "Raymond"
    assert clean["model_details"] == {
        "llm_provider": "custom",
        "api_key": REDACTED,
        "endpoint": "https://llm.example.test/v1",
    }
    assert clean["mcp_servers"][0]["headers"] == REDACTED
    assert clean["mcp_servers"][0]["url"] == "https://mcp.example.test"
    assert clean["functions"][0] == {"name": "open_door", "source_code": REDACTED}
    assert clean["functions"][1]["config"] == {"Auth-Header": REDACTED, "Client_Secret": REDACTED}
    assert clean["narrative"] == {"token": REDACTED, "password": REDACTED, "private_key": REDACTED}


@pytest.mark.parametrize(
    "key", ["api_key", "API-KEY", "apiKey", "x_api_key", "Authorization", "function_code"]
)
def test_redact_matches_key_names_whatever_their_case_or_separator(key: str) -> None:
    assert redact({key: SECRET}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    [
        # Named in the security review: exact-name redaction let these through.
        "key",
        "access_key",
        "bearer",
        "auth",
        # Their spellings and relatives.
        "Key",
        "AccessKey",
        "aws_secret_access_key",
        "apikey",
        "X-Api-Key",
        "bearer_token",
        "basic_auth",
        "AUTH",
        "refresh_token",
        "accessToken",
        "client_secret",
        "passphrase",
        "credentials",
        "Cookie",
        "private_keys",
    ],
)
def test_redact_matches_secret_words_anywhere_in_the_name(key: str) -> None:
    assert redact({"config": {key: SECRET}}) == {"config": {key: REDACTED}}


@pytest.mark.parametrize(
    "key",
    [
        "character_id",
        "character_name",
        "voice_type",
        "keywords",
        "author",
        "authored_by",
        "max_tokens",
        "monkey",
        "keyframes",
        "hotkeys",
        "language_codes",
        "memory_settings",
    ],
)
def test_redact_keeps_names_that_only_look_like_secret_words(key: str) -> None:
    assert redact({key: "kept"}) == {key: "kept"}


def test_redact_keeps_everything_else() -> None:
    payload = {"a": [1, 2.5, None, True], "b": ("x", {"c": "d"}), "voice_type": "MALE"}
    assert redact(payload) == {
        "a": [1, 2.5, None, True],
        "b": ["x", {"c": "d"}],
        "voice_type": "MALE",
    }


# --- stored snapshots ----------------------------------------------------------------------------


@pytest.fixture
def secret_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Convai's get answers (from the sandbox, over HTTP) carry the secret-bearing extras."""
    real_get = ConvaiClient.get_character

    def get_with_secrets(self: ConvaiClient, *args: Any, **kwargs: Any) -> CharacterDetails:
        details = real_get(self, *args, **kwargs)
        return CharacterDetails.from_payload({**details.raw, **copy.deepcopy(EXTRAS)})

    monkeypatch.setattr(ConvaiClient, "get_character", get_with_secrets)


def assert_nothing_secret_stored() -> None:
    stored = [
        *Character.objects.values_list("snapshot", flat=True),
        *Revision.objects.values_list("snapshot", flat=True),
        *Revision.objects.values_list("fields", flat=True),
        *AuditEvent.objects.values_list("details", flat=True),
    ]
    assert stored
    assert SECRET not in json.dumps(stored)


def test_create_stores_a_redacted_snapshot(create: Create, secret_payloads: None) -> None:
    character = create(language_codes=["fr-FR"]).character
    character.refresh_from_db()
    assert character.snapshot["model_details"]["api_key"] == REDACTED
    assert character.snapshot["model_details"]["llm_provider"] == "custom"  # kept
    assert character.snapshot["character_id"] == character.convai_id
    assert_nothing_secret_stored()


def test_import_stores_a_redacted_snapshot(
    editor: Membership,
    editor_key: Key,
    make_client: Callable[..., ConvaiClient],
    secret_payloads: None,
) -> None:
    convai_id = make_client(editor_key.raw).create_character("Dembe", "MALE", "A bodyguard.")
    saved = importing.import_character(actor=editor, api_key_id=editor_key.pk, convai_id=convai_id)
    character = Character.objects.get(pk=saved.character.pk)
    assert character.snapshot["mcp_servers"][0]["headers"] == REDACTED
    assert character.revisions.get().snapshot == character.snapshot
    assert_nothing_secret_stored()


def test_update_sync_clone_and_delete_store_redacted_snapshots(
    create: Create, editor: Membership, secret_payloads: None
) -> None:
    character = create().character
    services.update_character(
        actor=editor,
        character_id=character.pk,
        expected_version=1,
        fields={"name": "Red"},
    )
    services.take_remote_version(actor=editor, character_id=character.pk)
    copy_ = copying.clone_character(actor=editor, character_id=character.pk, new_name="")
    services.delete_character(
        actor=editor, character_id=copy_.character.pk, confirm_name="Red (copy)"
    )
    assert Revision.objects.count() == 4  # created, updated, cloned, deleted
    assert_nothing_secret_stored()
