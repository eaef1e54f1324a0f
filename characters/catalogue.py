"""The voice and language catalogues for the character forms, and their display names.

Forms read the catalogues through the client (cached per key for an hour) and validate against
them. When Convai cannot be reached the form still works with the character's current values
and says the catalogue could not be loaded.

Pages that only show names (list, detail, labels) never ask Convai: `peek` reads what the
client already cached, and falls back to Convai's public voice and language tables shipped in
convai/data/ (convai.public_tables; product data, for display only: never for validation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from convai import public_tables
from convai.client import ConvaiClient
from convai.errors import ConvaiError
from convai.types import Language, Voice
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for, open_key

VoiceNames = dict[str, dict[str, str]]
LanguageNames = dict[str, str]


@dataclass(frozen=True)
class Catalogue:
    voices: list[Voice] = field(default_factory=list)
    languages: list[Language] = field(default_factory=list)
    error: str = ""

    def voice(self, value: str) -> Voice | None:
        return next((v for v in self.voices if v.voice_value == value), None)

    def language_name(self, code: str) -> str:
        return next((lang.lang_name for lang in self.languages if lang.lang_code == code), code)


def load_catalogue(api_key: ApiKey | None) -> Catalogue:
    if api_key is None:
        return Catalogue(error="Add a verified API key to load Convai's voices and languages.")
    try:
        client = client_for(api_key)
        return Catalogue(voices=client.list_voices(), languages=client.list_languages())
    except (ConvaiError, ApiKeyUnusable) as error:
        return Catalogue(
            error=f"Convai's voice and language lists could not be loaded ({error.message}). "
            "You can still save with the current values."
        )


@cache
def shipped_catalogue() -> Catalogue:
    """Convai's public voice and language tables as shipped with the product (read once)."""
    voices = [
        Voice(
            voice_value=row["voice_value"],
            name=row.get("name") or row["voice_value"],
            section=row.get("section", ""),
            gender=row.get("gender", ""),
            lang_codes=list(row.get("lang_codes") or []),
        )
        for row in public_tables.voices()
        if row.get("voice_value")
    ]
    languages = [
        Language(lang_code=row["lang_code"], lang_name=row.get("lang_name") or row["lang_code"])
        for row in public_tables.languages()
        if row.get("lang_code")
    ]
    return Catalogue(voices=voices, languages=languages)


def peek(api_key: ApiKey | None) -> Catalogue:
    """The catalogues as far as they are known without a network call: this key's lists if
    the client has them cached, else the shipped public tables."""
    voices = languages = None
    if api_key is not None and api_key.is_active:
        try:
            client = ConvaiClient(open_key(api_key, actor=None, action="api_key.used"))
        except ApiKeyUnusable:
            pass
        else:
            voices, languages = client.cached_voices(), client.cached_languages()
    shipped = shipped_catalogue()
    return Catalogue(voices=voices or shipped.voices, languages=languages or shipped.languages)


def display_names(api_key: ApiKey | None = None) -> tuple[VoiceNames, LanguageNames]:
    """(voice value → {name, gender, section}, language code → name) for pages that show
    names: `peek(api_key)`; without a key, the shipped tables. A value neither knows is shown
    as it is by the caller."""
    if api_key is None:
        return _shipped_names()
    return _names_of(peek(api_key))


@cache
def _shipped_names() -> tuple[VoiceNames, LanguageNames]:
    return _names_of(shipped_catalogue())


def _names_of(catalogue: Catalogue) -> tuple[VoiceNames, LanguageNames]:
    voices = {
        v.voice_value: {"name": v.name, "gender": v.gender, "section": v.section}
        for v in catalogue.voices
    }
    return voices, {lang.lang_code: lang.lang_name for lang in catalogue.languages}


def filter_voices(
    voices: list[Voice], *, query: str = "", languages: list[str] | None = None
) -> list[Voice]:
    """Voices matching a search (name, section, gender, value) and any of the languages."""
    query = query.strip().lower()
    wanted = {code.lower() for code in languages or []}

    def matches(voice: Voice) -> bool:
        if query and not any(
            query in text.lower()
            for text in (voice.name, voice.section, voice.gender, voice.voice_value)
        ):
            return False
        if wanted:
            codes = {code.lower() for code in voice.lang_codes}
            prefixes = {code.split("-")[0] for code in codes}
            if not (codes & wanted or prefixes & {w.split("-")[0] for w in wanted}):
                return False
        return True

    return [voice for voice in voices if matches(voice)]


def voice_label(value: str) -> str:
    """Convai's name of a voice value ("Guy Male American English Voice") from the shipped
    tables (no Convai call: history, previews and messages name many values); else the value."""
    known = _shipped_names()[0].get(value) if value else None
    return (known or {}).get("name") or value


def language_label(code: str) -> str:
    """Convai's name of a language code ("German"), else the code."""
    return _shipped_names()[1].get(code, code) if code else code
