"""Validators shared by forms of several apps."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

# Bidirectional embeddings/overrides (U+202A to U+202E), isolates (U+2066 to U+2069) and the
# left-to-right / right-to-left marks (U+200E, U+200F). In a name they can make text display
# in another order than it is stored ("Trojan Source"): a key label or a person shown as
# something else in the members list or the audit log.
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f"]
)


def reject_bidi_controls(value: str) -> None:
    """Refuse invisible characters that reorder how a name is displayed."""
    if any(char in BIDI_CONTROLS for char in str(value)):
        raise ValidationError(
            "This contains invisible characters that change the direction text is shown in. "
            "Type it again without them (or paste it as plain text).",
            code="bidi_control",
        )


# What Django puts in place of bytes that are not UTF-8 (it decodes form data with
# errors="replace"): U+FFFD, the replacement character.
REPLACEMENT_CHARACTER = "\ufffd"


def reject_unreadable_text(value: object) -> None:
    """Refuse text that arrived as invalid UTF-8 (Django turned those bytes into U+FFFD), so
    it is neither stored nor sent to Convai with "�" where letters were.

    After decoding, a U+FFFD from broken bytes and one typed on purpose look the same; nobody
    names a character or a key "�", so both are refused: the message says what to do."""
    if REPLACEMENT_CHARACTER in str(value):
        raise ValidationError(
            "Part of this text could not be read (it arrived as “�”: it was not sent as "
            "UTF-8). Type it again, or paste it as plain text.",
            code="unreadable_text",
        )


class ReadableTextMixin:
    """For a form whose text is stored or sent to Convai: every text field (CharField and its
    kinds: email, username, password) refuses unreadable text, with the error on the field.
    List it first among the bases: `class CharacterForm(ReadableTextMixin, forms.Form)`."""

    fields: dict[str, forms.Field]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # the form's own copies of its fields
            if isinstance(field, forms.CharField):
                field.validators.insert(0, reject_unreadable_text)
