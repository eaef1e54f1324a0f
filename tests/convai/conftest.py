from tests.sandbox.support import (
    _empty_cache,
    make_client,
    other_key,
    sandbox_key,
    sandbox_url,
)

__all__ = [
    "_empty_cache",
    "make_client",
    "other_key",
    "sandbox_key",
    "sandbox_url",
]
