"""What the apps built on keys know about a key, without keys importing them.

design.md: characters → keys, never back. The revoke dialog warns how many characters become
read-only with the key; keys asks here, and characters registers the answer in its
AppConfig.ready() (characters/hooks.py). With nothing registered the warning is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ApiKey

_bound_counters: dict[str, Callable[[ApiKey], int]] = {}


def register_bound_counter(name: str, counter: Callable[[ApiKey], int]) -> None:
    """`counter(api_key)`: how many live things work through this key (read-only once it
    is revoked)."""
    _bound_counters[name] = counter


def read_only_after_revoking(api_key: ApiKey) -> int:
    return sum(counter(api_key) for counter in _bound_counters.values())
