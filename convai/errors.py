"""One error hierarchy for everything that can go wrong talking to Convai.

Messages are written to be shown to a user as they are, and never contain the API key.
Classification is by HTTP status (and transport failure), never by message text.
"""

from __future__ import annotations


class ConvaiError(Exception):
    """Base class. `message` is user-presentable; `status` is the HTTP status when known.

    The client also notes which request failed (`path`, and the `char_id` or `char_name` the
    body named), so the caller can say what happened in the user's terms
    (characters.convai_messages); `remote_message` is Convai's own text, for the audit log."""

    default_message = "Convai could not complete the request."
    path: str = ""
    char_id: str = ""
    char_name: str = ""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        remote_message: str = "",
    ) -> None:
        self.message = message or self.default_message
        self.status = status
        self.remote_message = remote_message
        super().__init__(self.message)


class ConvaiAuthError(ConvaiError):
    """401, or the 400 Convai gives when the key header is missing."""

    default_message = "Convai rejected this API key."


class ConvaiRequestError(ConvaiError):
    """Any other 4xx: Convai refused the request (unknown character, invalid input...)."""

    default_message = "Convai refused the request."


class ConvaiRateLimitError(ConvaiError):
    """429. `retry_after` is in seconds when Convai said."""

    default_message = "Convai is rate limiting requests; try again shortly."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = 429,
        remote_message: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, remote_message=remote_message)
        self.retry_after = retry_after


class ConvaiUnavailableError(ConvaiError):
    """5xx, timeouts, refused connections, DNS failures: Convai could not be reached."""

    default_message = "Convai could not be reached. Check your connection and try again."


class ConvaiTimeoutError(ConvaiUnavailableError):
    """The request was sent but no answer came in time; a write may still have happened."""

    default_message = "Convai did not answer in time."


class ConvaiProtocolError(ConvaiError):
    """A 2xx answer that cannot be understood (malformed or unexpected body)."""

    default_message = "Convai sent an answer that could not be understood."
