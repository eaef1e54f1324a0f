"""What the apps built on keys know about a key, without keys importing them.

design.md: characters → keys, never back. The revoke dialog warns how many characters become
read-only with the key; keys asks here, and characters registers the answer in its
AppConfig.ready() (characters/hooks.py). With nothing registered the warning is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accounts.models import User

    from .models import ApiKey

_bound_counters: dict[str, Callable[[ApiKey], int]] = {}
_revoke_warnings: dict[str, Callable[[ApiKey], str]] = {}
_page_notices: dict[str, Callable[[User], list[str]]] = {}


def register_bound_counter(name: str, counter: Callable[[ApiKey], int]) -> None:
    """`counter(api_key)`: how many live things work through this key (read-only once it
    is revoked)."""
    _bound_counters[name] = counter


def read_only_after_revoking(api_key: ApiKey) -> int:
    return sum(counter(api_key) for counter in _bound_counters.values())


def register_revoke_warning(name: str, warning: Callable[[ApiKey], str]) -> None:
    """`warning(api_key)`: one sentence for the revoke dialog about what else stops with the
    key ("" for nothing), e.g. the game builds that mint tokens with it."""
    _revoke_warnings[name] = warning


def warnings_after_revoking(api_key: ApiKey) -> list[str]:
    return [text for warning in _revoke_warnings.values() if (text := warning(api_key))]


def register_page_notice(name: str, notice: Callable[[User], list[str]]) -> None:
    """`notice(user)`: warnings for the top of the user's key page (e.g. builds that stopped
    because a key's owner left their team)."""
    _page_notices[name] = notice


def page_notices(user: User) -> list[str]:
    return [text for notice in _page_notices.values() for text in notice(user)]
