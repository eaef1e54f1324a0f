"""Voices and languages are cached per key for an hour, under a hash of the key."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.core.cache import cache

from convai.client import ConvaiClient, catalogue_cache_key
from convai.errors import ConvaiProtocolError
from sandbox.services import clear_faults, set_fault
from tests.support.sandbox import hits

MakeClient = Callable[..., ConvaiClient]


@pytest.mark.parametrize("method", ["list_voices", "list_languages"])
def test_second_call_is_served_from_the_cache(
    make_client: MakeClient, sandbox_key: str, method: str
) -> None:
    first = getattr(make_client(sandbox_key), method)()
    before = hits(sandbox_key)
    assert getattr(make_client(sandbox_key), method)() == first
    assert hits(sandbox_key) == before


def test_cache_is_per_key(make_client: MakeClient, sandbox_key: str, other_key: str) -> None:
    make_client(sandbox_key).list_voices()
    before = hits(other_key)
    make_client(other_key).list_voices()
    assert hits(other_key) == before + 1


def test_cache_key_holds_a_hash_never_the_key(
    make_client: MakeClient, sandbox_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored: list[tuple[str, int]] = []
    real_set = cache.set

    def recording_set(key: str, value: object, timeout: int) -> None:
        stored.append((key, timeout))
        real_set(key, value, timeout)

    monkeypatch.setattr(cache, "set", recording_set)
    convai = make_client(sandbox_key)
    convai.list_voices()
    convai.list_languages()
    assert [key for key, _ in stored] == [
        catalogue_cache_key("voices", convai.base_url, sandbox_key),
        catalogue_cache_key("languages", convai.base_url, sandbox_key),
    ]
    for key, timeout in stored:
        assert sandbox_key not in key
        assert timeout == settings.CONVAI_CATALOGUE_CACHE_SECONDS == 3600


def test_a_malformed_answer_is_not_cached(make_client: MakeClient, sandbox_key: str) -> None:
    set_fault(malformed=True)
    with pytest.raises(ConvaiProtocolError):
        make_client(sandbox_key).list_languages()
    clear_faults()
    assert len(make_client(sandbox_key).list_languages()) == 24
