"""The sandbox alone, over raw HTTP: exact statuses and bodies for every documented case of
character-base-api.md and api-notes.md. Messages are spelled out here (not imported) so a
change to the emulator's wording fails the test."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from sandbox.models import Listing, SandboxCharacter

CREATE_FAILED = {
    "INTERNAL_ERROR": "Error in creating the character. Check if all the input data is valid. "
    "Contact support for more info."
}
NOT_FOUND = {"ERROR": "Could not fetch character details from all_characters table."}
GET_FAILED = {"ERROR": "INTERNAL SERVER ERROR, one or more database calls failed!"}
MISSING_KEY = {"API_ERROR": "api_key not found."}
INVALID_KEY = {"API_ERROR": "Invalid API key provided."}
SUCCESS = {"STATUS": "SUCCESS"}
RAYMOND = {"charName": "Raymond", "voiceType": "MALE", "backstory": "A criminal mastermind."}
LIST_ITEM_KEYS = {
    "character_name",
    "user_id",
    "character_id",
    "voice_type",
    "timestamp",
    "character_actions",
    "character_emotions",
    "language_code",
    "language_codes",
    "listing",
    "model_details",
    "memory_settings",
    "last_interacted_with",
}


class Api:
    """Raw HTTP against the sandbox, exactly as the documentation's samples send it."""

    def __init__(self, base: str, key: str | None) -> None:
        self.base = base
        self.key = key

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.key is not None:
            headers["CONVAI-API-KEY"] = self.key
        return headers

    def post(self, path: str, payload: Any = None, raw: str | None = None) -> requests.Response:
        data = raw if raw is not None else (None if payload is None else json.dumps(payload))
        return requests.post(self.base + path, data=data, headers=self.headers(), timeout=10)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, headers=self.headers(), timeout=10)

    def create(self, **overrides: Any) -> str:
        response = self.post("/character/create", {**RAYMOND, **overrides})
        assert response.status_code == 201, response.text
        return str(response.json()["charID"])


@pytest.fixture
def api(sandbox_url: str, sandbox_key: str) -> Api:
    return Api(sandbox_url, sandbox_key)


@pytest.fixture
def other(sandbox_url: str, other_key: str) -> Api:
    return Api(sandbox_url, other_key)


# --- create -----------------------------------------------------------------------------------


def test_create_answers_201_with_the_new_char_id(api: Api) -> None:
    response = api.post("/character/create", {**RAYMOND, "actions": "Wave, Sit,Follow"})
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"charID"}
    character = SandboxCharacter.objects.get(character_id=body["charID"])
    assert character.character_name == "Raymond"
    assert character.actions == ["Wave", "Sit", "Follow"]


def test_create_accepts_actions_as_a_list(api: Api) -> None:
    char_id = api.create(actions=["Wave", " Sit "])
    assert SandboxCharacter.objects.get(character_id=char_id).actions == ["Wave", "Sit"]


@pytest.mark.parametrize(
    "payload",
    [
        {"voiceType": "MALE", "backstory": "b"},
        {"charName": "R", "backstory": "b"},
        {"charName": "R", "voiceType": "MALE"},
        {**RAYMOND, "charName": "   "},
        {**RAYMOND, "backstory": 42},
        {**RAYMOND, "actions": 3},
        {**RAYMOND, "charName": "x" * 256},
    ],
    ids=[
        "no-name",
        "no-voice",
        "no-backstory",
        "blank-name",
        "number-backstory",
        "bad-actions",
        "long-name",
    ],
)
def test_invalid_create_is_400_internal_error(api: Api, payload: dict[str, Any]) -> None:
    response = api.post("/character/create", payload)
    assert (response.status_code, response.json()) == (400, CREATE_FAILED)
    assert not SandboxCharacter.objects.exists()


def test_create_with_a_body_that_is_not_json_is_400_internal_error(api: Api) -> None:
    response = api.post("/character/create", raw="charName=Raymond")
    assert (response.status_code, response.json()) == (400, CREATE_FAILED)


# --- keys -------------------------------------------------------------------------------------

MISSING_KEY_STATUS = [
    ("post", "/character/create", 401),
    ("post", "/character/update", 401),
    ("post", "/character/get", 401),
    ("post", "/user/clone_character", 401),
    ("post", "/character/delete", 401),
    ("post", "/character/list", 400),
    ("get", "/tts/get_available_voices", 400),
    ("get", "/tts/get_available_languages", 400),
    ("post", "/user/user-api-usage", 400),
]


@pytest.mark.parametrize(("method", "path", "status"), MISSING_KEY_STATUS)
def test_missing_key_is_the_documented_api_error(
    sandbox_url: str, transactional_db: None, method: str, path: str, status: int
) -> None:
    api = Api(sandbox_url, None)
    response = api.get(path) if method == "get" else api.post(path, RAYMOND)
    assert (response.status_code, response.json()) == (status, MISSING_KEY)


@pytest.mark.parametrize(("method", "path", "status"), MISSING_KEY_STATUS)
def test_unknown_key_is_401_invalid_api_key(
    sandbox_url: str, sandbox_key: str, method: str, path: str, status: int
) -> None:
    api = Api(sandbox_url, "0" * 32)
    response = api.get(path) if method == "get" else api.post(path, RAYMOND)
    assert (response.status_code, response.json()) == (401, INVALID_KEY)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/character/create"),
        ("post", "/tts/get_available_voices"),
        ("get", "/user/user-api-usage"),
    ],
)
def test_wrong_method_is_405(api: Api, method: str, path: str) -> None:
    response = api.get(path) if method == "get" else api.post(path, {})
    assert response.status_code == 405


# --- update -----------------------------------------------------------------------------------


def test_update_changes_only_the_fields_sent(api: Api) -> None:
    char_id = api.create(actions="Wave")
    response = api.post(
        "/character/update",
        {"charID": char_id, "backstory": "Reformed.", "action": "Sit, Follow"},
    )
    assert (response.status_code, response.json()) == (200, SUCCESS)
    character = SandboxCharacter.objects.get(character_id=char_id)
    assert character.backstory == "Reformed."
    assert character.actions == ["Sit", "Follow"]
    assert (character.character_name, character.voice_type) == ("Raymond", "MALE")


def test_update_sets_name_voice_and_language_codes(api: Api) -> None:
    char_id = api.create()
    response = api.post(
        "/character/update",
        {
            "charID": char_id,
            "charName": "Red",
            "voiceType": "US MALE 1",
            "languageCodes": ["fr-FR", "cmn-CN"],
        },
    )
    assert (response.status_code, response.json()) == (200, SUCCESS)
    details = api.post("/character/get", {"charID": char_id}).json()
    assert details["character_name"] == "Red"
    assert details["voice_type"] == "US MALE 1"
    assert details["language_codes"] == ["fr-FR", "cmn-CN"]
    assert details["language_code"] == "fr-FR"


@pytest.mark.parametrize("char_id", [None, "", "no-such-character"])
def test_update_of_an_unknown_character_is_400_error(api: Api, char_id: str | None) -> None:
    payload = {"backstory": "x"} if char_id is None else {"charID": char_id, "backstory": "x"}
    response = api.post("/character/update", payload)
    assert (response.status_code, response.json()) == (400, NOT_FOUND)


def test_update_of_another_users_character_is_400_error(api: Api, other: Api) -> None:
    char_id = other.create()
    response = api.post("/character/update", {"charID": char_id, "backstory": "Mine now."})
    assert (response.status_code, response.json()) == (400, NOT_FOUND)
    assert SandboxCharacter.objects.get(character_id=char_id).backstory == RAYMOND["backstory"]


def test_update_with_an_invalid_backstory_is_400_error(api: Api) -> None:
    char_id = api.create()
    response = api.post("/character/update", {"charID": char_id, "backstory": ""})
    assert response.status_code == 400
    assert response.json() == {"ERROR": "Could not update character backstory."}


@pytest.mark.parametrize(
    "change",
    [{"charName": ""}, {"voiceType": 7}, {"languageCodes": ["xx-XX"]}, {"languageCodes": "en-US"}],
)
def test_update_with_invalid_fields_is_400_error(api: Api, change: dict[str, Any]) -> None:
    char_id = api.create()
    response = api.post("/character/update", {"charID": char_id, **change})
    assert response.status_code == 400
    assert response.json() == {"ERROR": "Could not update all_characters table."}
    assert SandboxCharacter.objects.get(character_id=char_id).character_name == "Raymond"


# --- get --------------------------------------------------------------------------------------


def test_get_returns_the_full_character(api: Api, sandbox_key: str) -> None:
    char_id = api.create(actions="Wave, Sit")
    response = api.post("/character/get", {"charID": char_id})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == LIST_ITEM_KEYS | {"backstory"}
    assert body["character_id"] == char_id
    assert body["character_name"] == "Raymond"
    assert body["voice_type"] == "MALE"
    assert body["backstory"] == RAYMOND["backstory"]
    assert body["character_actions"] == ["Wave", "Sit"]
    assert body["listing"] == "unlisted"
    assert len(body["timestamp"]) == 19 and body["timestamp"][10] == "T"  # no timezone
    owner = SandboxCharacter.objects.select_related("owner").get(character_id=char_id).owner
    assert body["user_id"] == owner.user_id


def test_get_by_name(api: Api) -> None:
    char_id = api.create()
    response = api.post("/character/get", {"charName": "Raymond"})
    assert response.status_code == 200
    assert response.json()["character_id"] == char_id


@pytest.mark.parametrize("payload", [{}, {"charID": "no-such-character"}, {"charName": "Nobody"}])
def test_get_of_an_unknown_character_is_400_error(api: Api, payload: dict[str, str]) -> None:
    response = api.post("/character/get", payload)
    assert (response.status_code, response.json()) == (400, GET_FAILED)


def test_get_of_another_users_private_character_is_400_error(api: Api, other: Api) -> None:
    char_id = other.create()
    assert api.post("/character/get", {"charID": char_id}).json() == GET_FAILED
    assert api.post("/character/get", {"charName": "Raymond"}).json() == GET_FAILED


def test_public_characters_are_readable_by_everyone_but_not_changeable(
    api: Api, other: Api
) -> None:
    char_id = other.create()
    SandboxCharacter.objects.filter(character_id=char_id).update(listing=Listing.PUBLIC)
    response = api.post("/character/get", {"charID": char_id})
    assert response.status_code == 200
    assert response.json()["backstory"] == RAYMOND["backstory"]
    assert api.post("/character/update", {"charID": char_id, "charName": "X"}).json() == NOT_FOUND
    assert api.post("/user/clone_character", {"charID": char_id}).json() == NOT_FOUND
    assert api.post("/character/delete", {"charID": char_id}).json() == NOT_FOUND


# --- clone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kb", "expected_kb"), [(None, []), (False, []), (True, ["lore.pdf"])])
def test_clone_copies_the_character_and_the_kb_only_when_asked(
    api: Api, kb: bool | None, expected_kb: list[str]
) -> None:
    char_id = api.create(actions="Wave")
    SandboxCharacter.objects.filter(character_id=char_id).update(knowledge_base=["lore.pdf"])
    payload: dict[str, Any] = {"charID": char_id}
    if kb is not None:
        payload["KB"] = kb
    response = api.post("/user/clone_character", payload)
    assert response.status_code == 200
    assert set(response.json()) == {"charID"}
    copy = SandboxCharacter.objects.get(character_id=response.json()["charID"])
    assert copy.character_id != char_id
    assert (copy.character_name, copy.backstory, copy.actions) == (
        "Raymond",
        RAYMOND["backstory"],
        ["Wave"],
    )
    assert copy.knowledge_base == expected_kb


def test_clone_of_an_unknown_or_foreign_character_is_400_error(api: Api, other: Api) -> None:
    foreign = other.create()
    for char_id in ("no-such-character", foreign):
        response = api.post("/user/clone_character", {"charID": char_id})
        assert (response.status_code, response.json()) == (400, NOT_FOUND)
    assert SandboxCharacter.objects.count() == 1


# --- delete -----------------------------------------------------------------------------------


def test_delete_removes_the_character(api: Api) -> None:
    char_id = api.create()
    response = api.post("/character/delete", {"charID": char_id})
    assert (response.status_code, response.json()) == (200, SUCCESS)
    assert api.post("/character/get", {"charID": char_id}).json() == GET_FAILED
    again = api.post("/character/delete", {"charID": char_id})
    assert (again.status_code, again.json()) == (400, NOT_FOUND)


def test_delete_of_another_users_character_is_400_error(api: Api, other: Api) -> None:
    char_id = other.create()
    response = api.post("/character/delete", {"charID": char_id})
    assert (response.status_code, response.json()) == (400, NOT_FOUND)
    assert SandboxCharacter.objects.filter(character_id=char_id).exists()


# --- list -------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [None, {}])
def test_list_returns_own_characters_without_backstory(
    api: Api, other: Api, payload: dict[str, Any] | None
) -> None:
    first, second = api.create(), api.create(charName="Liz")
    other.create()
    response = api.post("/character/list", payload)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"characters"}
    assert [item["character_id"] for item in body["characters"]] == [first, second]
    for item in body["characters"]:
        assert set(item) == LIST_ITEM_KEYS
        assert "backstory" not in item


def test_list_of_a_new_user_is_empty(api: Api) -> None:
    assert api.post("/character/list").json() == {"characters": []}


# --- catalogues -------------------------------------------------------------------------------


def test_voices_are_grouped_by_section_as_one_key_objects(api: Api) -> None:
    response = api.get("/tts/get_available_voices")
    assert response.status_code == 200
    sections = response.json()
    assert set(sections) >= {"Azure Voices", "GCP Voices", "Elevenlabs Voices"}
    entries = [entry for section in sections.values() for entry in section]
    assert len(entries) == 384
    assert all(len(entry) == 1 for entry in entries)
    ada = next(e for e in sections["Azure Voices"] if "Ada Female Multilingual Voice" in e)
    details = ada["Ada Female Multilingual Voice"]
    assert details["voice_value"] == "AZURE-MULTILINGUAL-a274d6d359"
    assert details["gender"] == "FEMALE"
    assert "en-US" in details["lang_codes"]
    assert "sample_link" in details


def test_languages_are_a_list_of_one_key_objects(api: Api) -> None:
    response = api.get("/tts/get_available_languages")
    assert response.status_code == 200
    languages = response.json()
    assert len(languages) == 24
    assert languages[0] == {"en-US": {"lang_code": "en-US", "lang_name": "English"}}
    assert {"cmn-CN": {"lang_code": "cmn-CN", "lang_name": "Chinese (Mainland)"}} in languages
