"""The one client the dashboard uses to talk to Convai (or to the sandbox, which speaks the
same wire contract).

Wire format as documented: every character endpoint is a POST with a JSON body, the two
catalogues are GETs, the key travels in the `CONVAI-API-KEY` header. Reading is tolerant (any
2xx on create, unknown fields kept in `raw`, wrapped or bare `get` payloads); an error key in a
2xx body is still a failure. Errors are classified by HTTP status only (see errors.py).

Transport: one pooled keep-alive session per thread unless the caller hands in its own; reads
(get, list, voices, languages, account usage) are retried with backoff on connection errors,
429 and 502/503/504; writes never are, since a create or clone that is retried may happen twice.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter

from .errors import (
    ConvaiAuthError,
    ConvaiError,
    ConvaiProtocolError,
    ConvaiRateLimitError,
    ConvaiRequestError,
    ConvaiTimeoutError,
    ConvaiUnavailableError,
)
from .types import AccountUsage, AuthToken, CharacterDetails, Language, Voice, parse_instant

logger = logging.getLogger("convai_admin.convai")

API_KEY_HEADER = "CONVAI-API-KEY"
ERROR_KEYS = ("API_ERROR", "ERROR", "INTERNAL_ERROR")
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# A Retry-After longer than this is not waited out inside a page request: we give up instead.
MAX_RETRY_WAIT_SECONDS = 5.0
_REMOTE_MESSAGE_LIMIT = 300

T = TypeVar("T")
Timeout = float | tuple[float, float]

_local = threading.local()


def new_session() -> requests.Session:
    """A session set up as the client expects (product User-Agent, no retries below ours).
    For callers that want their own connection handling, e.g. a benchmark that sends
    `Connection: close` to measure a new connection per call."""
    session = requests.Session()
    # Retries are ours (reads only); the adapter must never retry on its own.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = (
        f"ConvaiAdmin/{settings.VERSION} python-requests/{requests.__version__}"
    )
    return session


def thread_session() -> requests.Session:
    """The calling thread's keep-alive session, shared by every client on that thread (the
    key is sent per request, never stored on the session)."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = new_session()
        _local.session = session
    return session


def close_thread_session() -> None:
    """Drop the calling thread's pooled connections (tests close them before a live server
    stops; long-running workers may call it to shed idle sockets)."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is not None:
        session.close()
        _local.session = None


def catalogue_cache_key(kind: str, base_url: str, api_key: str) -> str:
    """Cache key for a per-key catalogue. Holds a keyed hash of the key, never the key."""
    digest = salted_hmac("convai.catalogue", f"{base_url}\n{api_key}", algorithm="sha256")
    return f"convai:{kind}:{digest.hexdigest()}"


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass(frozen=True)
class Reply:
    """What the client keeps of an HTTP answer."""

    status: int
    content: bytes
    retry_after: float | None

    def json(self) -> Any:
        """The decoded JSON body, or None when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None


class ConvaiClient:
    """A thin, typed wrapper over the Convai character API for one API key."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: Timeout | None = None,
        read_retries: int | None = None,
        backoff: float | None = None,
        session: requests.Session | None = None,
    ) -> None:
        """`session`: one the caller owns (and closes); None shares the calling thread's
        pooled keep-alive session, which is what the dashboard wants."""
        self._api_key = api_key
        self.base_url = (base_url or settings.CONVAI_API_BASE_URL).rstrip("/")
        self.timeout: Timeout = (
            timeout
            if timeout is not None
            else (settings.CONVAI_CONNECT_TIMEOUT, settings.CONVAI_READ_TIMEOUT)
        )
        self.read_retries = settings.CONVAI_READ_RETRIES if read_retries is None else read_retries
        self.backoff = settings.CONVAI_RETRY_BACKOFF if backoff is None else backoff
        self._session = session

    def __repr__(self) -> str:
        return f"<ConvaiClient {self.base_url}>"

    # --- characters -----------------------------------------------------------------------

    def create_character(
        self, name: str, voice_type: str, backstory: str, actions: list[str] | None = None
    ) -> str:
        """Create a character and return its new charID. Never retried."""
        body: dict[str, Any] = {"charName": name, "voiceType": voice_type, "backstory": backstory}
        if actions is not None:
            body["actions"] = ", ".join(actions)
        payload = self._call("POST", "/character/create", body, retry=False)
        return self._char_id(payload)

    def update_character(
        self,
        char_id: str,
        *,
        name: str | None = None,
        backstory: str | None = None,
        voice_type: str | None = None,
        actions: list[str] | None = None,
        language_codes: list[str] | None = None,
    ) -> None:
        """Send only the fields given; Convai leaves the others as they are."""
        body: dict[str, Any] = {"charID": char_id}
        if name is not None:
            body["charName"] = name
        if backstory is not None:
            body["backstory"] = backstory
        if voice_type is not None:
            body["voiceType"] = voice_type
        if actions is not None:
            body["action"] = ", ".join(actions)
        if language_codes is not None:
            body["languageCodes"] = list(language_codes)
        self._call("POST", "/character/update", body, retry=False, allow_empty=True)

    def get_character(
        self, char_id: str | None = None, *, name: str | None = None
    ) -> CharacterDetails:
        """Full details (with backstory), by charID or by charName. Also finds other users'
        public characters."""
        if not char_id and not name:
            raise ValueError("get_character needs a char_id or a name")
        body: dict[str, Any] = {"charID": char_id} if char_id else {"charName": name}
        payload = self._call("POST", "/character/get", body, retry=True)
        wrapped = payload.get("response")
        if "character_id" not in payload and isinstance(wrapped, Mapping):
            payload = dict(wrapped)
        return self._parse(lambda: CharacterDetails.from_payload(payload), "a character")

    def clone_character(self, char_id: str, *, include_kb: bool = False) -> str:
        """Copy a character the key owns; returns the copy's charID. Never retried."""
        body = {"charID": char_id, "KB": bool(include_kb)}
        payload = self._call("POST", "/user/clone_character", body, retry=False)
        return self._char_id(payload)

    def delete_character(self, char_id: str) -> None:
        """Irreversible on Convai's side. Never retried."""
        self._call("POST", "/character/delete", {"charID": char_id}, retry=False, allow_empty=True)

    def list_characters(self) -> list[CharacterDetails]:
        """The key owner's characters, without backstories (Convai's list omits them)."""
        payload: Any = self._call("POST", "/character/list", {}, retry=True, allow_list=True)
        items = payload if isinstance(payload, list) else payload.get("characters")
        if not isinstance(items, list):
            raise self._protocol("the character list")
        return self._parse(
            lambda: [CharacterDetails.from_payload(item) for item in items], "the character list"
        )

    # --- account --------------------------------------------------------------------------

    def get_account_usage(self) -> AccountUsage:
        """Which account the key belongs to, its plan and quota: the cheapest read that names
        the account, so it doubles as the key check. Retried like any read."""
        payload = self._call("POST", "/user/user-api-usage", {}, retry=True)
        return self._parse(lambda: AccountUsage.from_payload(payload), "the account usage")

    # --- short-lived auth tokens (api-notes.md, "Short-lived tokens") ---------------------

    def connect(self) -> AuthToken:
        """Mint a token for a game build (about an hour). A write: never retried, since each
        call mints one more live token (older ones stay valid)."""
        payload = self._call("POST", "/user/connect", {}, retry=False)
        return self._parse(lambda: AuthToken.from_payload(payload), "the auth token")

    def extend_token(self, token: str) -> AuthToken:
        """Give a live token a new lifetime. Never retried (a write). Assumed answer: the
        token's new `expirationTime` (the token itself may be left out)."""
        payload = self._call("POST", "/user/extend-token", {"apiAuthToken": token}, retry=False)
        return self._parse(
            lambda: AuthToken(token, parse_instant(payload.get("expirationTime"))),
            "the extended token",
        )

    def revoke_token(self, token: str) -> None:
        """Stop a token at once. Never retried here (callers that revoke many in the
        background decide themselves); any 2xx is success."""
        self._call(
            "POST", "/user/revoke-token", {"apiAuthToken": token}, retry=False, allow_empty=True
        )

    # --- catalogues -----------------------------------------------------------------------

    def list_voices(self) -> list[Voice]:
        return self._catalogue("voices", "/tts/get_available_voices", _voices_from)

    def list_languages(self) -> list[Language]:
        return self._catalogue("languages", "/tts/get_available_languages", _languages_from)

    def cached_voices(self) -> list[Voice] | None:
        """This key's voice list if it is in the cache, else None. Never asks Convai."""
        return self._cached("voices", _voices_from)

    def cached_languages(self) -> list[Language] | None:
        """This key's language list if it is in the cache, else None. Never asks Convai."""
        return self._cached("languages", _languages_from)

    def _cached(self, kind: str, parse: Callable[[Any], list[T]]) -> list[T] | None:
        payload = cache.get(catalogue_cache_key(kind, self.base_url, self._api_key))
        if payload is None:
            return None
        try:
            return parse(payload)
        except ValueError:
            return None

    def _catalogue(self, kind: str, path: str, parse: Callable[[Any], list[T]]) -> list[T]:
        """Cached per key for an hour. The raw JSON is cached (parsing is cheap, and a raw
        payload stays valid across code changes); only after it parsed, so a bad answer is
        not served for an hour."""
        key = catalogue_cache_key(kind, self.base_url, self._api_key)
        cached = cache.get(key)
        payload = (
            cached
            if cached is not None
            else self._call("GET", path, None, retry=True, allow_list=True)
        )
        result = self._parse(lambda: parse(payload), f"the {kind} list")
        if cached is None:
            cache.set(key, payload, settings.CONVAI_CATALOGUE_CACHE_SECONDS)
        return result

    # --- transport ------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        retry: bool,
        allow_empty: bool = False,
        allow_list: bool = False,
    ) -> Any:
        try:
            return self._attempts(
                method, path, body, retry=retry, allow_empty=allow_empty, allow_list=allow_list
            )
        except ConvaiError as error:
            error.path = path
            error.char_id = str((body or {}).get("charID") or "")
            error.char_name = str((body or {}).get("charName") or "")
            raise

    def _attempts(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        retry: bool,
        allow_empty: bool,
        allow_list: bool,
    ) -> Any:
        attempts = 1 + (max(0, self.read_retries) if retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                reply = self._send(method, path, body)
            except ConvaiTimeoutError:
                raise
            except ConvaiUnavailableError:
                if last:
                    raise
                self._pause(attempt, None, path)
                continue
            if reply.status in RETRYABLE_STATUSES and not last:
                retry_after = reply.retry_after
                if retry_after is None or retry_after <= MAX_RETRY_WAIT_SECONDS:
                    self._pause(attempt, retry_after, path)
                    continue
            return self._interpret(reply, allow_empty=allow_empty, allow_list=allow_list)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, attempt: int, retry_after: float | None, path: str) -> None:
        delay = (
            retry_after
            if retry_after is not None
            else self.backoff * (2**attempt) + random.uniform(0, self.backoff)  # noqa: S311
        )
        logger.debug("Convai retry %d for %s in %.2f s", attempt + 1, path, delay)
        if delay > 0:
            time.sleep(delay)

    # The key is in `headers` here and in every frame below (requests, urllib3, http.client):
    # a crash down there must not print it into an error report, whoever called the client.
    @sensitive_variables()
    def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> Reply:
        if not (self._api_key.isascii() and self._api_key.isprintable()):
            # An HTTP header cannot carry it; the encoding error would quote the key.
            raise ConvaiAuthError(
                "This API key contains characters that cannot be sent to Convai. Check it for "
                "a copy-and-paste mistake."
            )
        url = self.base_url + path
        log_path = urlsplit(url).path
        headers = {API_KEY_HEADER: self._api_key}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        session = self._session if self._session is not None else thread_session()
        started = time.perf_counter()
        try:
            response = session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout as exc:
            self._log_failure(method, log_path, started, exc)
            raise ConvaiUnavailableError(
                "Convai could not be reached: the connection timed out. Try again in a moment."
            ) from None
        except requests.exceptions.Timeout as exc:
            self._log_failure(method, log_path, started, exc)
            raise ConvaiTimeoutError(
                "Convai did not answer in time. If you were creating or changing something, it "
                "may still have happened: sync to check before trying again."
            ) from None
        except requests.exceptions.RequestException as exc:
            self._log_failure(method, log_path, started, exc)
            raise ConvaiUnavailableError(
                "Convai could not be reached: the connection failed. Check the network and "
                "try again in a moment."
            ) from None
        logger.debug(
            "Convai %s %s -> %s in %.1f ms",
            method,
            log_path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        # Only plain data leaves this method: a Response kept alive by an exception's
        # traceback would keep its pooled socket open.
        reply = Reply(
            status=response.status_code,
            content=response.content,
            retry_after=_parse_retry_after(response.headers.get("Retry-After")),
        )
        response.close()
        return reply

    @staticmethod
    def _log_failure(method: str, path: str, started: float, exc: Exception) -> None:
        # Only the exception's class: its text may carry transport details we do not vet.
        logger.debug(
            "Convai %s %s failed (%s) after %.1f ms",
            method,
            path,
            type(exc).__name__,
            (time.perf_counter() - started) * 1000,
        )

    def _interpret(self, reply: Reply, *, allow_empty: bool, allow_list: bool) -> Any:
        status = reply.status
        payload = reply.json()
        remote = self._redact(_remote_message(payload))
        if 200 <= status < 300:
            if isinstance(payload, dict):
                error_key = next((key for key in ERROR_KEYS if key in payload), None)
                if error_key == "API_ERROR":
                    raise self._auth_error(status, remote)
                if error_key is not None:
                    raise self._request_error(status, remote)
                return payload
            if isinstance(payload, list) and allow_list:
                return payload
            if allow_empty and not reply.content.strip():
                return {}
            raise ConvaiProtocolError(
                "Convai sent an answer that could not be understood. Try again; if it keeps "
                "happening, Convai may be having problems.",
                status=status,
            )
        if status == 401 or (
            status == 400 and isinstance(payload, dict) and "API_ERROR" in payload
        ):
            raise self._auth_error(status, remote)
        if status == 429:
            retry_after = reply.retry_after
            wait = f"in {retry_after:.0f} seconds" if retry_after is not None else "shortly"
            raise ConvaiRateLimitError(
                f"Convai is rate limiting requests; try again {wait}.",
                remote_message=remote,
                retry_after=retry_after,
            )
        if 400 <= status < 500:
            raise self._request_error(status, remote)
        if status >= 500:
            raise ConvaiUnavailableError(
                f"Convai is not available right now (HTTP {status}). Try again in a moment.",
                status=status,
                remote_message=remote,
            )
        raise ConvaiProtocolError(
            f"Convai sent an unexpected answer (HTTP {status}).", status=status
        )

    def _auth_error(self, status: int, remote: str) -> ConvaiAuthError:
        return ConvaiAuthError(
            "Convai rejected this API key. Check that it is correct and still active, or add "
            "another key.",
            status=status,
            remote_message=remote,
        )

    def _request_error(self, status: int, remote: str) -> ConvaiRequestError:
        detail = f": {remote}" if remote else "."
        return ConvaiRequestError(
            f"Convai refused the request{detail}", status=status, remote_message=remote
        )

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "[redacted]")
        return text

    def _char_id(self, payload: Mapping[str, Any]) -> str:
        char_id = payload.get("charID")
        if not isinstance(char_id, str | int) or str(char_id) == "":
            raise self._protocol("the new character's ID")
        return str(char_id)

    def _parse(self, build: Callable[[], T], what: str) -> T:
        try:
            return build()
        except (ValueError, TypeError, AttributeError, KeyError):
            raise self._protocol(what) from None

    @staticmethod
    def _protocol(what: str) -> ConvaiProtocolError:
        return ConvaiProtocolError(
            f"Convai sent {what} in a form that could not be understood. Try again; if it keeps "
            "happening, Convai may have changed its API.",
            status=200,
        )


def _remote_message(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    for key in ERROR_KEYS:
        if key in payload:
            return str(payload[key])[:_REMOTE_MESSAGE_LIMIT]
    return ""


def _voices_from(payload: Any) -> list[Voice]:
    """`{section: [{display name: {voice_value, ...}}, ...]}` to a flat list; entries that
    cannot be read are skipped, a wrong overall shape is an error."""
    if not isinstance(payload, dict):
        raise ValueError("voices payload is not an object")
    voices: list[Voice] = []
    for section, entries in payload.items():
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for name, details in entry.items():
                if isinstance(details, dict):
                    try:
                        voices.append(Voice.from_payload(str(section), str(name), details))
                    except ValueError:
                        continue
    return voices


def _languages_from(payload: Any) -> list[Language]:
    """`[{code: {lang_code, lang_name}}, ...]` to a flat list."""
    if not isinstance(payload, list):
        raise ValueError("languages payload is not a list")
    languages: list[Language] = []
    for entry in payload:
        if not isinstance(entry, dict):
            continue
        for code, details in entry.items():
            if isinstance(details, dict):
                try:
                    languages.append(Language.from_payload(str(code), details))
                except ValueError:
                    continue
    return languages


__all__ = ["ConvaiClient", "ConvaiError"]
