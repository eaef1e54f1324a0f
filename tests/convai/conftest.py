from tests.sandbox.support import (
    _empty_cache,
    _live_server_without_nagle,
    make_client,
    other_key,
    sandbox_key,
    sandbox_url,
)

__all__ = [
    "_empty_cache",
    "_live_server_without_nagle",
    "make_client",
    "other_key",
    "sandbox_key",
    "sandbox_url",
]
