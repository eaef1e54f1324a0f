"""One set of rules for a character's fields, for every way in: the character form and bundles.

Each `clean_*` takes what arrived and returns the value to store, or raises Django's
ValidationError with a message that says what is wrong and what to do. The form calls them
from its `clean_<field>` methods; a bundle calls them for each character and prefixes the
message with where it is. So a value the form refuses cannot come in through a file, and the
preview and the import only ever see values the form would have accepted.

Single-line fields (name, action, voice) are visible text on one line: no control character
(line breaks, tabs, escape codes such as ESC), no Unicode line or paragraph separator, no
bidirectional override (they make a name display as something else: "Trojan Source"). A
backstory is many lines: it may hold line breaks and tabs, and direction marks (right-to-left
text legitimately uses them), but no other control character. No field may hold a lone UTF-16
surrogate (not a character: it cannot be encoded, stored or sent). Identifiers and language
codes are matched whole (`fullmatch`: a trailing newline does not pass) and never trimmed.
Text fields lose the whitespace at their ends, as the form's fields always did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError

from convai_admin.validators import reject_bidi_controls

NAME_MAX = 100
BACKSTORY_MAX = 10_000
ACTION_MAX = 100
ACTIONS_MAX = 100
VOICE_MAX = 255
LANGUAGES_MAX = 50

CONVAI_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")

_SURROGATES = re.compile("[\ud800-\udfff]")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("This must be text.", code="type")
    if _SURROGATES.search(value):
        raise ValidationError(
            "This contains an invalid character (a lone UTF-16 surrogate, which is not text). "
            "Type it again, or fix the file's text encoding.",
            code="surrogate",
        )
    return value


# Every control character (category Cc: U+0000-001F, U+007F-009F) and the line and paragraph
# separators (Zl U+2028, Zp U+2029), as one class: searched at C speed.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _refuse_controls(value: str, *, multiline: bool = False) -> None:
    found = (_CONTROLS_BUT_LINES if multiline else _CONTROLS).search(value)
    if found:
        shown = f"U+{ord(found.group()):04X}"
        where = "" if multiline else "on one line "
        raise ValidationError(
            f"This contains an invisible control character ({shown}: a line break, tab "
            f"or escape code). Type it again {where}without it.",
            code="control",
        )


def single_line(value: object) -> str:
    """Visible text on one line: the rule of a name, an action and a voice. Whitespace at the
    ends is dropped first, as the form's fields do."""
    text = _text(value).strip()
    _refuse_controls(text)
    reject_bidi_controls(text)
    return text


def clean_name(value: object) -> str:
    name = " ".join(single_line(value).split())
    if not name:
        raise ValidationError("Give the character a name.", code="required")
    if len(name) > NAME_MAX:
        raise ValidationError(
            f"The name has {len(name)} characters; Convai allows up to {NAME_MAX}.",
            code="max_length",
        )
    return name


def clean_backstory(value: object) -> str:
    backstory = _text(value).strip().replace("\r\n", "\n").replace("\r", "\n")
    _refuse_controls(backstory, multiline=True)
    if len(backstory) > BACKSTORY_MAX:
        raise ValidationError(
            f"The backstory has {len(backstory):,} characters; Convai allows up to "
            f"{BACKSTORY_MAX:,}. Shorten it by {len(backstory) - BACKSTORY_MAX:,}.",
            code="max_length",
        )
    return backstory


def clean_actions(values: Iterable[object]) -> list[str]:
    """Each action one line of 1 to ACTION_MAX characters without commas (Convai joins them
    with commas); blanks dropped, duplicates (ignoring case) kept once."""
    actions = [" ".join(single_line(value).split()) for value in values]
    actions = [action for action in actions if action]
    commas = [action for action in actions if "," in action]
    if commas:
        raise ValidationError(
            "Convai separates actions with commas, so an action cannot contain one: "
            + "; ".join(f"“{action}”" for action in commas[:3])
            + ". Put each action on its own line.",
            code="comma",
        )
    if any(len(action) > ACTION_MAX for action in actions):
        raise ValidationError(f"Keep each action under {ACTION_MAX} characters.", code="long")
    unique: dict[str, str] = {}
    for action in actions:
        unique.setdefault(action.lower(), action)
    if len(unique) > ACTIONS_MAX:
        raise ValidationError(
            f"There are {len(unique)} actions; keep it to {ACTIONS_MAX}.", code="too_many"
        )
    return list(unique.values())


def clean_voice_type(value: object) -> str:
    """The voice's form (which voices exist is the catalogue's business)."""
    voice = single_line(value)
    if not voice:
        raise ValidationError("Choose a voice.", code="required")
    if len(voice) > VOICE_MAX:
        raise ValidationError(f"A voice is at most {VOICE_MAX} characters.", code="max_length")
    return voice


def clean_language_code(value: object) -> str:
    code = _text(value)
    if not LANGUAGE_CODE.fullmatch(code):
        shown = code[:20].encode("unicode_escape").decode("ascii")
        raise ValidationError(
            f"“{shown}” is not a language code (like en-US or ar).", code="language"
        )
    return code


def clean_language_codes(values: Iterable[object]) -> list[str]:
    codes = list(dict.fromkeys(clean_language_code(value) for value in values))
    if len(codes) > LANGUAGES_MAX:
        raise ValidationError(
            f"There are {len(codes)} languages; keep it to {LANGUAGES_MAX}.", code="too_many"
        )
    return codes


def clean_convai_id(value: object) -> str:
    convai_id = _text(value)
    if not CONVAI_ID.fullmatch(convai_id):
        raise ValidationError(
            "A Convai character ID is 1 to 64 letters, digits, - or _.", code="convai_id"
        )
    return convai_id


def message(error: ValidationError) -> str:
    """One sentence from a ValidationError (ours always carry exactly one)."""
    return " ".join(str(text) for text in error.messages)


__all__ = [
    "ACTIONS_MAX",
    "ACTION_MAX",
    "BACKSTORY_MAX",
    "LANGUAGES_MAX",
    "NAME_MAX",
    "VOICE_MAX",
    "clean_actions",
    "clean_backstory",
    "clean_convai_id",
    "clean_language_code",
    "clean_language_codes",
    "clean_name",
    "clean_voice_type",
    "message",
    "single_line",
]
