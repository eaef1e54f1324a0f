"""Convai's answers in plain words: what happened, in the user's terms, and what to do.

Convai answers some not-founds with a 400 that reads like an outage ("INTERNAL SERVER ERROR,
one or more database calls failed!" for a get of an unknown ID or name; see
../shared/convai/api-notes.md, quirk 3). Shown as it is, a new user thinks Convai is down. Here
each known answer (the request that failed, the status class, Convai's documented text) maps to
one message naming the character and the key (label and last four, never the key) and the next
step. Convai's raw text is not lost: the services keep it in the audit event's details
(`convai_message`). An answer not in the table keeps the client's own wording.

One table, read top to bottom, first match wins; tests/characters/test_convai_messages.py
drives every row through the services.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from convai.errors import ConvaiAuthError, ConvaiError, ConvaiRequestError

GET = "/character/get"
CREATE = "/character/create"
UPDATE = "/character/update"
DELETE = "/character/delete"

# Convai's documented texts (character-base-api.md), matched loosely: case and punctuation
# vary between Convai's docs, SDKs and answers.
GET_FAILED = re.compile(r"database calls failed", re.IGNORECASE)
NOT_FOUND = re.compile(r"could not fetch character details", re.IGNORECASE)
BACKSTORY_FAILED = re.compile(r"could not update character backstory", re.IGNORECASE)
UPDATE_FAILED = re.compile(r"could not update all_characters", re.IGNORECASE)
CREATE_FAILED = re.compile(r"error in creating the character", re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    """When a failure matches (`kind` of error, one of `paths` if any, Convai's text matching
    `text` if any, looked up by name or by ID if `by_name` is set, during a rebind if `rebind`
    is set), the user reads `message`, formatted with {key}, {id} and {name}."""

    kind: type[ConvaiError]
    message: str
    paths: tuple[str, ...] = ()
    text: re.Pattern[str] | None = None
    by_name: bool | None = None
    rebind: bool | None = None

    def matches(self, error: ConvaiError, rebind: bool) -> bool:
        return (
            isinstance(error, self.kind)
            and (not self.paths or error.path in self.paths)
            and (self.text is None or bool(self.text.search(error.remote_message)))
            and (
                self.by_name is None
                or self.by_name == (bool(error.char_name) and not error.char_id)
            )
            and (self.rebind is None or self.rebind == rebind)
        )


RULES: tuple[Rule, ...] = (
    Rule(
        ConvaiRequestError,
        "The key {key} cannot reach this character: its Convai account does not have it. "
        "Choose a key of the account that owns the character.",
        paths=(GET,),
        text=GET_FAILED,
        rebind=True,
    ),
    Rule(
        ConvaiRequestError,
        "No character named “{name}” in the Convai account of the key {key}. Names must match "
        "exactly, capitals included: check the name, or look the character up by its ID.",
        paths=(GET,),
        text=GET_FAILED,
        by_name=True,
    ),
    Rule(
        ConvaiRequestError,
        "No character with the ID {id} in the Convai account of the key {key}. Check the ID, "
        "or look it up with a key of the account that owns it.",
        paths=(GET,),
        text=GET_FAILED,
    ),
    Rule(
        ConvaiRequestError,
        "Convai has no character with the ID {id} in the account of the key {key}: it was "
        "deleted in Convai, or belongs to another account. Use “Sync” to check.",
        paths=(UPDATE, DELETE),
        text=NOT_FOUND,
    ),
    Rule(
        ConvaiRequestError,
        "Convai did not accept the backstory. Check it for a very long text or unusual "
        "characters and save again; what you typed is kept.",
        paths=(UPDATE,),
        text=BACKSTORY_FAILED,
    ),
    Rule(
        ConvaiRequestError,
        "Convai did not accept one of the changed values (name, voice, actions or languages). "
        "Check them and save again; what you typed is kept.",
        paths=(UPDATE,),
        text=UPDATE_FAILED,
    ),
    Rule(
        ConvaiRequestError,
        "Convai did not create the character: it found the name, voice, backstory or actions "
        "invalid. Check them and try again; what you typed is kept.",
        paths=(CREATE,),
        text=CREATE_FAILED,
    ),
    Rule(
        ConvaiAuthError,
        "Convai rejected the key {key}: it is no longer valid (deleted or replaced in Convai). "
        "Its owner can check it on the API keys page; an Admin can rebind the character to "
        "another key.",
    ),
)


def explain(error: ConvaiError, *, key: str = "", rebind: bool = False) -> str:
    """What to tell the user about a failed Convai call made with the key labelled `key`
    (operations.key_label); `rebind`: the call checked whether a candidate key reaches a
    character. Rate limits, outages, timeouts and unreadable answers keep the client's
    message, which already says what happened and what to do."""
    for rule in RULES:
        if rule.matches(error, rebind):
            return rule.message.format(
                key=key or "you chose",
                id=error.char_id or "given",
                name=error.char_name,
            )
    if isinstance(error, ConvaiRequestError):
        return _refused(error)
    return error.message


def _refused(error: ConvaiRequestError) -> str:
    """An answer not in the table: Convai's words, said to be Convai's, with a next step."""
    said = f": “{error.remote_message}”" if error.remote_message else ""
    status = f" (HTTP {error.status})" if error.status else ""
    return (
        f"Convai refused the request{status}{said}. Check what you entered and try again; the "
        "audit log keeps Convai's full answer."
    )
