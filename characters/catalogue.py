"""The voice and language catalogues for the character forms.

Read through the client (cached per key for an hour). When Convai cannot be reached the form
still works with the character's current values and says the catalogue could not be loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from convai.errors import ConvaiError
from convai.types import Language, Voice
from keys.models import ApiKey
from keys.services import ApiKeyUnusable, client_for


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
