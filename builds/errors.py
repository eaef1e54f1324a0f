"""The domain errors of builds: the pages' (a user-facing message) and the token endpoint's
(a status, a stable code for the game's logs, and a message for its developers)."""

from __future__ import annotations

from convai_admin.errors import DomainError, NotFound


class BuildError(DomainError):
    default_message = "The build could not be changed."


class BuildNotFound(NotFound):
    default_message = "No such build in this team."


class BuildKeyUnusable(BuildError):
    default_message = (
        "That key cannot mint tokens for this team: choose a verified, active key of a member."
    )


class Refused(Exception):
    """The token endpoint says no. `code` names the reason in the answer and the audit event;
    `retry_after` (seconds) comes with 429s."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
