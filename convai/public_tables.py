"""Convai's public voice and language tables (what GET /tts/get_available_voices and
/tts/get_available_languages answer), shipped once, as data, in convai/data/.

Two readers, one copy: the product shows names from them when no key's catalogue is cached
(characters/catalogue.py: display only, never validation), and the sandbox serves them as its
emulated Convai's tables. Rows are flat: voices {voice_value, name, section, gender,
lang_codes, sample_link}, languages {lang_code, lang_name}. Read once per process; callers
must not modify what they get.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"


@functools.cache
def voices() -> list[dict[str, Any]]:
    return _read("voices.json")


@functools.cache
def languages() -> list[dict[str, Any]]:
    return _read("languages.json")


def _read(name: str) -> list[dict[str, Any]]:
    with (DATA_DIR / name).open(encoding="utf-8") as handle:
        rows: list[dict[str, Any]] = json.load(handle)
    return rows
