"""Bodies an attacker (or a broken client) can send: the sandbox answers them at once with the
documented 400 of the field they hit, stores nothing, and keeps answering afterwards.

JSON may spell a lone UTF-16 surrogate ("\\ud800") or a NUL ("\\u0000") inside a string. The
first cannot even be encoded for SQLite (it used to be a 500, after several seconds); the second
used to be stored. Every string field of every endpoint is tried with both, over real HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from django.test import Client

from sandbox.models import SandboxCharacter
from sandbox.services import create_sandbox_key

CREATE_FAILED = {
    "INTERNAL_ERROR": "Error in creating the character. Check if all the input data is valid. "
    "Contact support for more info."
}
NOT_FOUND = {"ERROR": "Could not fetch character details from all_characters table."}
GET_FAILED = {"ERROR": "INTERNAL SERVER ERROR, one or more database calls failed!"}
UPDATE_FAILED = {"ERROR": "Could not update all_characters table."}
BACKSTORY_FAILED = {"ERROR": "Could not update character backstory."}
RAYMOND = {"charName": "Raymond", "voiceType": "MALE", "backstory": "A criminal mastermind."}
SURROGATE, NUL = "\ud800", "\u0000"
HOSTILE = pytest.mark.parametrize("bad", [SURROGATE, NUL], ids=["lone-surrogate", "nul"])
# Well under the several seconds the 500 took, and far above an ordinary local answer.
AT_ONCE = 2.0


class Sandbox:
    """Raw HTTP with the body as JSON text, as an attacker would write it."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key

    def post(self, path: str, payload: Any) -> requests.Response:
        text = json.dumps(payload)  # ensure_ascii: the bad characters travel as \\u escapes
        started = time.monotonic()
        response = requests.post(
            self.base + path,
            data=text,
            headers={"CONVAI-API-KEY": self.key, "Content-Type": "application/json"},
            timeout=10,
        )
        assert time.monotonic() - started < AT_ONCE
        return response

    def create(self) -> str:
        response = self.post("/character/create", {**RAYMOND, "actions": "Wave"})
        assert response.status_code == 201, response.text
        return str(response.json()["charID"])


@pytest.fixture
def sandbox(sandbox_url: str, sandbox_key: str) -> Sandbox:
    return Sandbox(sandbox_url, sandbox_key)


def assert_refused(response: requests.Response, body: dict[str, str]) -> None:
    assert (response.status_code, response.json()) == (400, body)


def assert_untouched(char_id: str) -> None:
    character = SandboxCharacter.objects.get(character_id=char_id)
    assert (character.character_name, character.voice_type, character.backstory) == (
        RAYMOND["charName"],
        RAYMOND["voiceType"],
        RAYMOND["backstory"],
    )
    assert (character.actions, character.language_codes) == (["Wave"], ["en-US"])


# --- create -----------------------------------------------------------------------------------


@HOSTILE
@pytest.mark.parametrize(
    "field", ["charName", "voiceType", "backstory", "actions", "actions-item", "actions-list"]
)
def test_create_refuses_it_in_every_string_field(sandbox: Sandbox, bad: str, field: str) -> None:
    changes: dict[str, Any] = {
        "charName": {"charName": f"Ray{bad}mond"},
        "voiceType": {"voiceType": bad},
        "backstory": {"backstory": f"A criminal{bad} mastermind."},
        "actions": {"actions": f"Wave, Si{bad}t"},
        "actions-item": {"actions": ["Wave", f"{bad}Sit"]},
        "actions-list": {"actions": [bad]},
    }[field]
    assert_refused(sandbox.post("/character/create", {**RAYMOND, **changes}), CREATE_FAILED)
    assert not SandboxCharacter.objects.exists()


# --- update -----------------------------------------------------------------------------------


@HOSTILE
@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"charName": "Red{bad}"}, UPDATE_FAILED),
        ({"voiceType": "{bad}"}, UPDATE_FAILED),
        ({"action": "Jump, {bad}"}, UPDATE_FAILED),
        ({"action": ["Jump", "{bad}"]}, UPDATE_FAILED),
        ({"languageCodes": ["en-US", "fr-FR{bad}"]}, UPDATE_FAILED),
        ({"languageCode": "de-DE{bad}"}, UPDATE_FAILED),
        ({"backstory": "Reformed.{bad}"}, BACKSTORY_FAILED),
    ],
    ids=["charName", "voiceType", "action", "action-list", "languageCodes", "languageCode", "bs"],
)
def test_update_refuses_it_in_every_string_field(
    sandbox: Sandbox, bad: str, change: dict[str, Any], refusal: dict[str, str]
) -> None:
    char_id = sandbox.create()
    hostile = json.loads(json.dumps(change).replace("{bad}", json.dumps(bad)[1:-1]))
    response = sandbox.post("/character/update", {"charID": char_id, **hostile})
    assert_refused(response, refusal)
    assert_untouched(char_id)


@HOSTILE
@pytest.mark.parametrize(
    ("path", "refusal"),
    [
        ("/character/update", NOT_FOUND),
        ("/character/get", GET_FAILED),
        ("/user/clone_character", NOT_FOUND),
        ("/character/delete", NOT_FOUND),
    ],
    ids=["update", "get", "clone", "delete"],
)
def test_a_char_id_carrying_it_is_an_unknown_character(
    sandbox: Sandbox, bad: str, path: str, refusal: dict[str, str]
) -> None:
    char_id = sandbox.create()
    response = sandbox.post(path, {"charID": char_id + bad, "charName": "New"})
    assert_refused(response, refusal)
    assert_untouched(char_id)
    assert SandboxCharacter.objects.count() == 1


@HOSTILE
def test_get_by_a_name_carrying_it_is_refused(sandbox: Sandbox, bad: str) -> None:
    sandbox.create()
    assert_refused(sandbox.post("/character/get", {"charName": "Raymond" + bad}), GET_FAILED)


# --- endpoints that read no field -------------------------------------------------------------


@HOSTILE
@pytest.mark.parametrize("path", ["/character/list", "/user/user-api-usage"])
def test_endpoints_without_fields_ignore_it(sandbox: Sandbox, bad: str, path: str) -> None:
    response = sandbox.post(path, {"anything": bad, bad: "x"})
    assert response.status_code == 200


@HOSTILE
def test_unknown_fields_carrying_it_are_ignored_and_never_stored(
    sandbox: Sandbox, bad: str
) -> None:
    response = sandbox.post("/character/create", {**RAYMOND, "extra": bad, bad: bad})
    assert response.status_code == 201
    assert_refused(sandbox.post("/character/create", {**RAYMOND, "charName": bad}), CREATE_FAILED)
    assert SandboxCharacter.objects.count() == 1


def test_the_sandbox_keeps_answering_after_hostile_bodies(sandbox: Sandbox) -> None:
    for bad in (SURROGATE, NUL) * 3:
        sandbox.post("/character/create", {**RAYMOND, "charName": bad})
        sandbox.post("/character/get", {"charID": bad})
    char_id = sandbox.create()
    assert sandbox.post("/character/get", {"charID": char_id}).status_code == 200


# --- bodies that are not what they claim ------------------------------------------------------


@pytest.mark.django_db
def test_a_deeply_nested_body_is_refused_like_any_unreadable_one(client: Client) -> None:
    """Nested deeper than the JSON decoder recurses: the documented error for missing fields,
    never a 500."""
    key = create_sandbox_key("hostile")
    body = "[" * 200_000 + "]" * 200_000
    response = client.post(
        "/sandbox/character/create",
        body,
        content_type="application/json",
        headers={"CONVAI-API-KEY": key},
    )
    assert response.status_code == 400
    assert "INTERNAL_ERROR" in response.json()


@pytest.mark.django_db
def test_a_body_that_is_not_utf8_is_refused_like_any_unreadable_one(client: Client) -> None:
    key = create_sandbox_key("hostile")
    response = client.post(
        "/sandbox/character/create",
        b'{"charName": "\xff\xfe", "voiceType": "MALE", "backstory": "b"}',
        content_type="application/json",
        headers={"CONVAI-API-KEY": key},
    )
    assert (response.status_code, response.json()) == (400, CREATE_FAILED)
