"""The kinds of background job: one registration per kind says everything jobs/ needs to know.

A kind is registered once, by the app whose work it is (characters/job_kinds.py registers
import all, sync all and bundle import), from its AppConfig.ready(). The engine (services.py),
the pages (views.py) and the URLs (urls.py) look the kind up here and know nothing else about
it: which task runs it (and resumes it, and retries its failures), which policy action a member
needs to start or resume it, its name on pages and in the audit trail, whether its failed items
can be tried again, where an item's local object is shown, and its start pages (mounted in the
`jobs:` namespace). Adding a kind is one `register(...)` call and no migration (`Job.kind`
takes its choices from here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .models import Job


class Enqueueable(Protocol):
    """A django-tasks Task taking the job's ID (the registering app defines it)."""

    def enqueue(self, job_id: int) -> Any: ...


@dataclass(frozen=True)
class StartPage:
    """A page that starts a job of this kind, mounted as `jobs:<name>` at t/<team>/<route>."""

    route: str
    view: Callable[..., Any]
    name: str


@dataclass(frozen=True)
class JobKind:
    name: str  # stored in Job.kind and in the audit origin ("task <name> #<id>")
    label: str  # "Import from a key": pages and audit target labels
    task: Enqueueable  # runs the job; also what resume and retry queue again
    start_action: str  # the policy action needed to start or resume it
    # Why its failed items cannot be retried as a new job; empty when they can.
    no_retry: str = ""
    # The URL name of an item's local object, reversed with (team slug, item.local_id).
    item_url: str = ""
    start_pages: tuple[StartPage, ...] = ()
    # The IDs of the keys whose Convai quota a finished job spent besides its own `api_key`
    # (their account usage is refreshed then).
    keys_spent: Callable[[Job], Iterable[Any]] | None = None

    @property
    def retryable(self) -> bool:
        return not self.no_retry


_KINDS: dict[str, JobKind] = {}


class UnknownJobKind(LookupError):
    """No app registered this kind (a row left by a removed kind, or a typo)."""


def register(kind: JobKind) -> JobKind:
    """Make a kind known. Registering the same name twice is a mistake (two apps, or the same
    module imported under two names) and fails at start-up."""
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ImproperlyConfigured(f"Job kind {kind.name!r} is registered twice.")
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownJobKind(name) from None


def find(name: str) -> JobKind | None:
    """The kind, or None for a job row whose kind is no longer registered (pages still show it)."""
    return _KINDS.get(name)


def kinds() -> list[JobKind]:
    return list(_KINDS.values())


def kind_choices() -> list[tuple[str, str]]:
    """`Job.kind`'s choices (a callable, so a new kind needs no migration)."""
    return [(kind.name, kind.label) for kind in _KINDS.values()]


def start_pages() -> list[StartPage]:
    return [page for kind in _KINDS.values() for page in kind.start_pages]
