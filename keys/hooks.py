"""What the apps built on keys know about a key, without keys importing them.

design.md: characters → keys, never back. The revoke dialog warns how many characters become
read-only with the key; keys asks here, and characters registers the answer in its
AppConfig.ready() (characters/hooks.py). With nothing registered the warning is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class StoreRotation:
    """What a rotation did to another app's sealed values: re-sealed, already on the active
    key, and those that could not be opened (left as they are)."""

    rotated: int = 0
    already_current: int = 0
    failed: int = 0


@dataclass(frozen=True)
class SealedStore:
    """Values an app built on keys sealed with the ENCRYPTION_KEYS keyring
    (convai_admin/encryption.py), e.g. the game builds' player secrets: `key_ids()` names the
    key IDs they are sealed with (keys.E002/W002), `rotate(active_id)` re-seals them under the
    active key (manage.py rotate_encryption_keys), so that an older key can leave the keyring."""

    key_ids: Callable[[], set[str]]
    rotate: Callable[[str], StoreRotation]


_sealed_stores: dict[str, SealedStore] = {}


def register_sealed_store(name: str, store: SealedStore) -> None:
    _sealed_stores[name] = store


def sealed_store_key_ids() -> set[str]:
    return {key_id for store in _sealed_stores.values() for key_id in store.key_ids()}


def rotate_sealed_stores(active_id: str) -> dict[str, StoreRotation]:
    return {name: store.rotate(active_id) for name, store in sorted(_sealed_stores.items())}
