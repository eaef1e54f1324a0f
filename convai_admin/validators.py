"""Validators shared by forms of several apps."""

from __future__ import annotations

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
