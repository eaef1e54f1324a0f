"""The character operations of the emulated Convai API, with the documented messages.

Each operation takes the authenticated key and the decoded JSON body and returns the success
body; a documented failure is raised as `RemoteError(status, body)`. Field names, status codes
and messages follow character-base-api.md exactly; list/voices/languages/usage follow
api-notes.md. Characters belong to the key's account, so every key of an account sees the same.

Every string taken from a body goes through `_usable`: JSON can spell a NUL or a lone UTF-16
surrogate ("\\u0000", "\\ud800"), which no database should store and which SQLite cannot even
encode, so such a value is bad input and gets the field's documented 400, before any query.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from django.db import transaction
from django.db.models import Q

from convai import public_tables

from . import services
from .models import USAGE_METRICS, Listing, SandboxCharacter, SandboxKey

CREATE_FAILED = (
    "Error in creating the character. Check if all the input data is valid. "
    "Contact support for more info."
)
NOT_FOUND = "Could not fetch character details from all_characters table."
BACKSTORY_FAILED = "Could not update character backstory."
UPDATE_FAILED = "Could not update all_characters table."
GET_FAILED = "INTERNAL SERVER ERROR, one or more database calls failed!"
INVALID_KEY = "Invalid API key provided."
INVALID_TOKEN = "Invalid or expired auth token."
TOKEN_NEEDS_KEY = "Auth tokens are minted, extended and revoked with an API key."
MISSING_KEY = "api_key not found."

MAX_NAME_LENGTH = 255
MAX_BACKSTORY_LENGTH = 100_000
DEFAULT_LANGUAGE = "en-US"


class RemoteError(Exception):
    """A documented failure: the status and the exact JSON body to answer with."""

    def __init__(self, status: int, key: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {key: message}


# --- catalogues -------------------------------------------------------------------------------


@functools.cache
def voices_payload() -> dict[str, list[dict[str, Any]]]:
    """The voice table in Convai's shape: `{section: [{display name: {voice_value, ...}}]}`."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for voice in public_tables.voices():
        details = {
            "voice_value": voice["voice_value"],
            "lang_codes": list(voice.get("lang_codes", [])),
            "gender": voice.get("gender", ""),
            "sample_link": voice.get("sample_link", ""),
        }
        sections.setdefault(voice["section"], []).append({voice["name"]: details})
    return sections


@functools.cache
def languages_payload() -> list[dict[str, dict[str, str]]]:
    """The language table in Convai's shape: `[{code: {lang_code, lang_name}}]`."""
    return [
        {row["lang_code"]: {"lang_code": row["lang_code"], "lang_name": row["lang_name"]}}
        for row in public_tables.languages()
    ]


@functools.cache
def language_codes() -> frozenset[str]:
    return frozenset(row["lang_code"] for row in public_tables.languages())


# --- shapes -----------------------------------------------------------------------------------


def list_item(character: SandboxCharacter) -> dict[str, Any]:
    """The list-item shape: a `get` result without backstory, plus the extra fields seen in
    practice."""
    codes = list(character.language_codes) or [DEFAULT_LANGUAGE]
    return {
        "character_name": character.character_name,
        "user_id": character.owner.user_id,
        "character_id": character.character_id,
        "voice_type": character.voice_type,
        "timestamp": character.created_at.astimezone(UTC)
        .replace(tzinfo=None)
        .isoformat(timespec="seconds"),
        "character_actions": list(character.actions),
        "character_emotions": [],
        "language_code": codes[0],
        "language_codes": codes,
        "listing": character.listing,
        "model_details": {},
        "memory_settings": {"enabled": False},
        "last_interacted_with": None,
    }


def full_item(character: SandboxCharacter) -> dict[str, Any]:
    return {**list_item(character), "backstory": character.backstory}


# --- validation helpers -----------------------------------------------------------------------


def _usable(value: Any) -> str | None:
    """A non-empty string that can be stored and sent back as UTF-8, or None: JSON allows NULs
    and lone surrogates in strings; we refuse them rather than let the database choke."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _actions(value: Any) -> list[str] | None:
    """Actions as Convai takes them: a comma-separated string, or (leniently) a list."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        return None
    actions = [item.strip() for item in items if item.strip()]
    if not all(_usable(action) for action in actions):
        return None
    return actions


def _text(value: Any, limit: int) -> str | None:
    text = _usable(value)
    if text is None or not text.strip() or len(text) > limit:
        return None
    return text


def _owned(key: SandboxKey, char_id: Any) -> SandboxCharacter:
    """A character of the key's account; anything else is the documented not-found 400."""
    char_id = _usable(char_id)
    if char_id is None:
        raise RemoteError(400, "ERROR", NOT_FOUND)
    character = (
        SandboxCharacter.objects.select_related("owner")
        .filter(character_id=char_id, owner_id=key.account_id)
        .first()
    )
    if character is None:
        raise RemoteError(400, "ERROR", NOT_FOUND)
    return character


# --- operations -------------------------------------------------------------------------------


def create(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    name = _text(body.get("charName"), MAX_NAME_LENGTH)
    voice = _text(body.get("voiceType"), MAX_NAME_LENGTH)
    backstory = _text(body.get("backstory"), MAX_BACKSTORY_LENGTH)
    actions = _actions(body.get("actions", ""))
    if name is None or voice is None or backstory is None or actions is None:
        raise RemoteError(400, "INTERNAL_ERROR", CREATE_FAILED)
    character = SandboxCharacter.objects.create(
        owner_id=key.account_id,
        character_name=name,
        voice_type=voice,
        backstory=backstory,
        actions=actions,
        language_codes=[DEFAULT_LANGUAGE],
    )
    return {"charID": character.character_id}


def update(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    with transaction.atomic():
        character = _owned(key, body.get("charID"))
        if "backstory" in body:
            backstory = _text(body["backstory"], MAX_BACKSTORY_LENGTH)
            if backstory is None:
                raise RemoteError(400, "ERROR", BACKSTORY_FAILED)
            character.backstory = backstory
        changes: dict[str, Any] = {}
        if "charName" in body:
            changes["character_name"] = _text(body["charName"], MAX_NAME_LENGTH)
        if "voiceType" in body:
            changes["voice_type"] = _text(body["voiceType"], MAX_NAME_LENGTH)
        if "action" in body:
            changes["actions"] = _actions(body["action"])
        if "languageCodes" in body or "languageCode" in body:
            changes["language_codes"] = _languages(body)
        if any(value is None for value in changes.values()):
            raise RemoteError(400, "ERROR", UPDATE_FAILED)
        for field, value in changes.items():
            setattr(character, field, value)
        character.save()
    return {"STATUS": "SUCCESS"}


def _languages(body: Mapping[str, Any]) -> list[str] | None:
    """`languageCodes` (documented list); `languageCode` (one string, sent by some SDKs)."""
    value = body["languageCodes"] if "languageCodes" in body else [body["languageCode"]]
    if not isinstance(value, list) or not value:
        return None
    known = language_codes()
    if not all(isinstance(code, str) and _usable(code) in known for code in value):
        return None
    return list(dict.fromkeys(value))


def get(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    """By charID, else by charName; the account's own characters first, then public ones."""
    visible = SandboxCharacter.objects.select_related("owner").filter(
        Q(owner_id=key.account_id) | Q(listing=Listing.PUBLIC)
    )
    raw_id = body.get("charID")
    character = None
    if isinstance(raw_id, str) and raw_id:  # a charID wins over a name, even an unusable one
        char_id = _usable(raw_id)
        character = visible.filter(character_id=char_id).first() if char_id else None
    elif (name := _usable(body.get("charName"))) is not None:
        matches = visible.filter(character_name=name)
        character = matches.filter(owner_id=key.account_id).first() or matches.first()
    if character is None:
        raise RemoteError(400, "ERROR", GET_FAILED)
    return full_item(character)


def clone(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    include_kb = body.get("KB", False)
    if not isinstance(include_kb, bool):
        raise RemoteError(400, "ERROR", UPDATE_FAILED)
    source = _owned(key, body.get("charID"))
    copy = SandboxCharacter.objects.create(
        owner_id=key.account_id,
        character_name=source.character_name,
        voice_type=source.voice_type,
        backstory=source.backstory,
        actions=list(source.actions),
        language_codes=list(source.language_codes),
        knowledge_base=list(source.knowledge_base) if include_kb else [],
    )
    return {"charID": copy.character_id}


def delete(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    _owned(key, body.get("charID")).delete()
    return {"STATUS": "SUCCESS"}


def list_characters(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    characters = SandboxCharacter.objects.select_related("owner").filter(owner_id=key.account_id)
    return {"characters": [list_item(character) for character in characters]}


def voices(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return voices_payload()


def languages(key: SandboxKey, body: Mapping[str, Any]) -> list[dict[str, dict[str, str]]]:
    return languages_payload()


def account_usage(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    """Who the key belongs to, its plan and quota, in the shape Convai's Unreal plugin reads
    (api-notes.md, "Account usage")."""
    account = key.account
    plan: dict[str, Any] = {"plan_name": account.plan_name}
    if account.renews_at is not None:
        plan["expiry_ts"] = account.renews_at.astimezone(UTC).isoformat(timespec="seconds")
    plan["metrics"] = [
        {
            "id": metric,
            "usage_details": [{"limit": getattr(account, limit), "usage": getattr(account, usage)}],
        }
        for metric, (limit, usage) in USAGE_METRICS.items()
    ]
    return {"usage": {"user_name": account.name, "email": account.email}, "usage_v2": plan}


# --- short-lived auth tokens (api-notes.md, "Short-lived tokens") ----------------------------


def _iso(moment: Any) -> str:
    return str(moment.astimezone(UTC).isoformat(timespec="seconds")).replace("+00:00", "Z")


def _token_in(body: Mapping[str, Any]) -> str:
    value = body.get("apiAuthToken")
    return value if isinstance(value, str) else ""


def connect(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /user/connect`: a new token for the key, valid about an hour."""
    token, expires_at = services.mint_token(key)
    return {"apiAuthToken": token, "expirationTime": _iso(expires_at)}


def extend_token(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /user/extend-token` with `{"apiAuthToken"}`: a live token of the key's account
    gets a full lifetime from now. Assumed shape (undocumented): the new expirationTime."""
    token = _token_in(body)
    expires_at = services.extend_token(key, token)
    if expires_at is None:
        raise RemoteError(400, "ERROR", INVALID_TOKEN)
    return {"apiAuthToken": token, "expirationTime": _iso(expires_at)}


def revoke_token(key: SandboxKey, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /user/revoke-token` with `{"apiAuthToken"}`: the token stops working at once.
    Revoking it again succeeds; a token of another account is unknown."""
    if not services.revoke_token(key, _token_in(body)):
        raise RemoteError(400, "ERROR", INVALID_TOKEN)
    return {"STATUS": "SUCCESS"}
