"""The domain errors of character operations: each says what happened and what to do next.

Views map them to a form error or a message (not-found to 404); services and the plumbing in
characters.operations raise them, recorded once where they are refused."""

from __future__ import annotations

from typing import Any

from convai_admin.errors import DomainError, NotFound

from .models import Character, PendingOperation, Revision
from .remote import FieldChange


class CharacterError(DomainError):
    """A character operation was refused or failed; the message says what to do next."""


class CharacterNotFound(NotFound):
    default_message = "That character does not exist in this team."


class CharacterDeleted(CharacterError):
    default_message = "This character was deleted; its page and history stay readable."


class NoUsableKey(CharacterError):
    default_message = (
        "This character has no usable API key: the key that owns it was revoked or its owner "
        "left the team. An Admin can rebind it to another member's key."
    )


class KeyNotUsable(CharacterError):
    """The chosen key is not one of the actor's own verified, active keys."""

    default_message = "Choose one of your own verified API keys."


class ConvaiFailed(CharacterError):
    """Convai refused or could not be reached; `maybe_happened` for a timed-out write."""

    def __init__(
        self, message: str, *, maybe_happened: bool = False, status: int | None = None
    ) -> None:
        self.maybe_happened = maybe_happened
        self.status = status
        super().__init__(message)


class Drift(CharacterError):
    """The remote character differs from our last snapshot (edited in Convai's playground)."""

    def __init__(self, changes: list[FieldChange], remote: dict[str, Any]) -> None:
        self.changes = changes
        self.remote = remote
        super().__init__(
            "This character was changed in Convai since it was last saved here: "
            + ", ".join(change.label for change in changes)
            + ". Review the differences, then overwrite them or take Convai's version."
        )


class Conflict(CharacterError):
    """A teammate saved the character after this form was opened."""

    def __init__(self, character: Character, revision: Revision | None) -> None:
        self.current = character.editable()
        self.version = character.version
        self.by = revision.created_by if revision is not None else None
        self.at = revision.created_at if revision is not None else character.updated_at
        who = self.by.display_name if self.by is not None else "Someone"
        super().__init__(
            f"{who} saved this character while you were editing it. Their version is shown "
            "next to yours; your input is kept. Merge what you need and save again."
        )


class SaveInProgress(Conflict):
    """Another save of this character is on its way to Convai right now (it holds the
    version): this one is stopped like any conflict, with the input kept."""

    def __init__(self, character: Character) -> None:
        self.current = character.editable()
        self.version = character.version
        self.by = character.saving_by
        self.at = character.saving_since or character.updated_at
        self.by_name = who = self.by.display_name if self.by is not None else "Someone"
        CharacterError.__init__(
            self,
            f"{who} is saving this character right now; their save has not finished. Your "
            "input is kept: save again in a moment, and you will see their changes first.",
        )


class OperationPending(CharacterError):
    """The same form (its token) was already sent and has not finished: Convai is not asked
    twice; the outcome is checked with Convai (reconcile_pending_operations)."""

    def __init__(self, operation: PendingOperation) -> None:
        self.operation = operation
        super().__init__(
            f"This {operation.get_kind_display().lower()} of “{operation.name}” was already "
            "sent to Convai and has not finished, so it was not sent again. If it does not "
            "finish, its outcome is checked with Convai automatically; “Check now” on the "
            "character list checks it at once."
        )


class OperationDone(CharacterError):
    """The same form (its token) was already sent and it succeeded: nothing is sent again."""

    def __init__(self, operation: PendingOperation) -> None:
        self.operation = operation
        self.character = operation.result or operation.character
        super().__init__(
            f"This {operation.get_kind_display().lower()} of “{operation.name}” was already "
            "done (the form was sent twice): nothing was sent to Convai again."
        )


class NotOwnedByKey(CharacterError):
    """Get found it, but the key's list does not have it: a public character of someone else."""


class AlreadyInTeam(CharacterError):
    def __init__(self, character: Character) -> None:
        self.character = character
        super().__init__(f"“{character.name}” is already in this team.")


class NameMismatch(CharacterError):
    default_message = "Type the character's name exactly as shown to confirm the deletion."


class RemoteMissing(CharacterError):
    """Convai no longer has the character (deleted there, behind our back). The record is
    flagged, never deleted silently: a member who may delete it removes it from the team."""

    default_message = (
        "This character no longer exists on Convai: it was deleted there (perhaps in Convai's "
        "playground), so it cannot be edited, cloned or deleted through Convai. Its page and "
        "history stay here; use “Remove from this team” to take it off the list."
    )


class StillOnConvai(CharacterError):
    default_message = (
        "Convai has this character after all, so it was not removed here. It works again; "
        "delete it on Convai through “Delete” if that is what you want."
    )
