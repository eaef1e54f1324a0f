"""Validation for the character pages.

Forms validate what a member typed; services do the work. Voices and languages come from
Convai's catalogues, except that a character's current value is always kept (and labelled)
even when the catalogue does not know it or could not be loaded: a form never silently
replaces what Convai holds. Long text is checked with a message, never cut (no `maxlength`
on the widgets: a browser would truncate a paste without saying so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast
from uuid import uuid4

from django import forms

from convai_admin.validators import ReadableTextMixin
from keys.models import ApiKey
from keys.selectors import same_account

from . import validation
from .catalogue import Catalogue, display_names, filter_voices
from .selectors import DEFAULT_SORT, SORTS, CharacterFilters
from .validation import BACKSTORY_MAX, NAME_MAX


def key_choice_label(api_key: ApiKey) -> str:
    return f"{api_key.label} (…{api_key.last_four})"


class KeyField(forms.ChoiceField):
    """A select offering the member's usable keys that accepts any key ID: whether the actor
    may use a key is the service's decision (operations.own_key, rebind_character), and the
    service records the refusal. A choice check here would refuse a swapped ID silently,
    leaving no trace in the audit log."""

    def offer(
        self, keys: Iterable[ApiKey], describe: Callable[[ApiKey], str] = key_choice_label
    ) -> None:
        self.choices = [(str(k.pk), describe(k)) for k in keys]

    def validate(self, value: Any) -> None:
        forms.Field.validate(self, value)  # required, but no choice check (see above)


def voice_label(voice: Any) -> str:
    return _named(voice.name, voice.gender)


def _named(name: str, gender: str) -> str:
    gender = (gender or "").strip().capitalize()
    return f"{name} · {gender}" if gender else name


def _current_voice_label(value: str, catalogue: Catalogue) -> str:
    """A current voice the live catalogue lacks, named from the shipped tables when they know
    it (a display name only: validity still comes from the live catalogue)."""
    shown = display_names()[0].get(value)
    name = _named(shown["name"], shown.get("gender", "")) if shown else value
    if catalogue.voices:
        return f"{name} (current; not in Convai's voice list)"
    return f"{name} (current)"


def voice_choices(
    catalogue: Catalogue,
    *,
    query: str = "",
    languages: Iterable[str] = (),
    keep: Iterable[str] = (),
) -> tuple[list[tuple[str, Any]], int]:
    """Grouped choices (section → voices) matching `query` and `languages`, with every value
    in `keep` present (first, in "Current choice", when the filter or the catalogue lacks it).
    Returns the choices and how many catalogue voices matched."""
    matches = filter_voices(catalogue.voices, query=query, languages=list(languages))
    groups: dict[str, list[tuple[str, str]]] = {}
    for voice in matches:
        groups.setdefault(voice.section or "Other voices", []).append(
            (voice.voice_value, voice_label(voice))
        )
    shown = {value for group in groups.values() for value, _ in group}
    kept: list[tuple[str, str]] = []
    for value in keep:
        if not value or value in shown or value in {v for v, _ in kept}:
            continue
        known = catalogue.voice(value)
        kept.append(
            (value, voice_label(known) if known else _current_voice_label(value, catalogue))
        )
    choices: list[tuple[str, Any]] = []
    if kept:
        choices.append(("Current choice", kept))
    choices.extend((section, voices) for section, voices in groups.items())
    return choices, len(matches)


class OperationTokenField(forms.CharField):
    """The hidden idempotency token of a create, clone or delete form, made when the form is
    rendered: the same form sent twice is one operation, and Convai is asked once."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("initial", lambda: uuid4().hex)
        super().__init__(**kwargs)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


class CharacterForm(ReadableTextMixin, forms.Form):
    """Create or edit a character. `current` is the record's editable fields (edit), whose
    voice and languages stay valid whatever the catalogue says."""

    name = forms.CharField(
        label="Name",
        help_text=f"Up to {NAME_MAX} characters. Shown to players and in Convai's playground.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    voice_type = forms.CharField(
        label="Voice", widget=forms.Select, error_messages={"required": "Choose a voice."}
    )
    backstory = forms.CharField(
        label="Backstory",
        help_text=f"Who the character is and how they speak. Up to {BACKSTORY_MAX:,} characters.",
        widget=forms.Textarea(attrs={"rows": 10, "data-count-max": BACKSTORY_MAX}),
    )
    actions = forms.CharField(
        label="Actions",
        required=False,
        help_text="One action per line, e.g. “Wave” or “Open the door”. Leave empty for none.",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )
    language_codes = forms.MultipleChoiceField(
        label="Languages",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The languages the character speaks. The voice list shows the voices that "
        "speak at least one of them.",
    )

    def __init__(
        self,
        *args: Any,
        catalogue: Catalogue,
        current: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.catalogue = catalogue
        self.current = current or {}
        current_voice = str(self.current.get("voice_type") or "")
        current_codes = [str(code) for code in self.current.get("language_codes") or []]

        # Languages: the catalogue, plus the record's current codes it does not know.
        known = {lang.lang_code for lang in catalogue.languages}
        shipped_names = display_names()[1]
        language_choices = [(lang.lang_code, lang.lang_name) for lang in catalogue.languages]
        language_choices += [
            (
                code,
                f"{shipped_names.get(code, code)} (current; not in Convai's list)"
                if known
                else shipped_names.get(code, code),
            )
            for code in current_codes
            if code not in known
        ]
        self.fields["language_codes"].choices = language_choices  # type: ignore[attr-defined]

        # Voices: every catalogue voice validates; the widget starts filtered by the chosen
        # languages (the picker refilters through htmx), always keeping the chosen value.
        chosen_voice = str(self.data.get("voice_type", "") if self.is_bound else current_voice)
        chosen_codes = (
            self.data.getlist("language_codes")
            if self.is_bound and hasattr(self.data, "getlist")
            else current_codes
        )
        self.valid_voices = {v.voice_value for v in catalogue.voices} | (
            {current_voice} if current_voice else set()
        )
        widget_choices, self.voice_match_count = voice_choices(
            catalogue,
            languages=chosen_codes,
            keep=[v for v in (chosen_voice, current_voice) if v in self.valid_voices],
        )
        field = self.fields["voice_type"]
        field.widget.choices = widget_choices
        field.widget.attrs.update({"size": 10, "class": "voice-select"})
        field.help_text = (
            "Grouped by provider. Filtered by the chosen languages."
            if catalogue.voices
            else "Convai's voice list is not available right now; the current voice is kept."
        )
        if not self.is_bound and current_voice:
            self.initial.setdefault("voice_type", current_voice)

    # One set of rules for the form and for bundles: characters/validation.py.

    def clean_name(self) -> str:
        return validation.clean_name(self.cleaned_data["name"])

    def clean_voice_type(self) -> str:
        value = str(self.cleaned_data.get("voice_type") or "")
        if value not in self.valid_voices:
            if not self.catalogue.voices:
                raise forms.ValidationError(
                    "Convai's voice list could not be loaded, so a voice cannot be chosen now. "
                    "Try again in a moment."
                )
            raise forms.ValidationError("Choose one of Convai's voices from the list.")
        return validation.clean_voice_type(value)

    def clean_backstory(self) -> str:
        return validation.clean_backstory(self.cleaned_data["backstory"])

    def clean_actions(self) -> list[str]:
        return validation.clean_actions(_lines(self.cleaned_data.get("actions") or ""))

    def clean_language_codes(self) -> list[str]:
        return validation.clean_language_codes(self.cleaned_data.get("language_codes") or [])

    def fields_data(self) -> dict[str, Any]:
        """The edited fields, in the shape services take."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "voice_type": data["voice_type"],
            "backstory": data["backstory"],
            "actions": data["actions"],
            "language_codes": data["language_codes"],
        }


def initial_from(fields: dict[str, Any]) -> dict[str, Any]:
    """A record's editable fields as form initial data (actions one per line)."""
    return {**fields, "actions": "\n".join(fields.get("actions") or [])}


class CreateCharacterForm(CharacterForm):
    api_key = KeyField(
        label="Owned by",
        help_text="Which of your verified API keys owns the character on Convai. Teammates "
        "work on it through this key, without seeing it.",
    )
    token = OperationTokenField()

    field_order = ["name", "voice_type", "language_codes", "backstory", "actions", "api_key"]

    def __init__(self, *args: Any, api_keys: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(KeyField, self.fields["api_key"]).offer(api_keys)


class EditCharacterForm(CharacterForm):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    field_order = ["name", "voice_type", "language_codes", "backstory", "actions"]


class ImportFindForm(ReadableTextMixin, forms.Form):
    api_key = KeyField(
        label="With key",
        help_text="The key of the Convai account that owns the character.",
    )
    lookup = forms.CharField(
        label="Convai character ID or exact name",
        max_length=200,
        help_text="The ID from Convai's playground (a long hexadecimal string), or the "
        "character's name exactly as written there.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, api_keys: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(KeyField, self.fields["api_key"]).offer(api_keys)

    def clean_lookup(self) -> str:
        return str(self.cleaned_data["lookup"]).strip()


class ImportConfirmForm(ReadableTextMixin, forms.Form):
    api_key = forms.UUIDField(widget=forms.HiddenInput)
    convai_id = forms.CharField(max_length=64, widget=forms.HiddenInput, strip=False)

    def clean_convai_id(self) -> str:
        return validation.clean_convai_id(self.cleaned_data["convai_id"])


class AdoptForm(ReadableTextMixin, forms.Form):
    api_key = forms.UUIDField(widget=forms.HiddenInput)
    name = forms.CharField(max_length=NAME_MAX, widget=forms.HiddenInput)


class CloneForm(ReadableTextMixin, forms.Form):
    new_name = forms.CharField(
        label="Name of the copy",
        help_text=f"Up to {NAME_MAX} characters.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    include_kb = forms.BooleanField(
        label="Also copy the knowledge bank",
        required=False,
        help_text="The documents the character draws on. Without it, the copy starts with "
        "an empty knowledge bank.",
    )
    token = OperationTokenField()

    def clean_new_name(self) -> str:
        return validation.clean_name(self.cleaned_data["new_name"])


class DeleteForm(forms.Form):
    confirm_name = forms.CharField(
        label="Type the character's name to confirm",
        strip=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    overwrite_drift = forms.BooleanField(required=False, widget=forms.HiddenInput)
    token = OperationTokenField()


class RebindForm(forms.Form):
    api_key = KeyField(label="New key")

    def __init__(
        self,
        *args: Any,
        candidates: list[ApiKey],
        current: ApiKey | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)

        def label(k: ApiKey) -> str:
            text = f"{key_choice_label(k)} · {k.owner.display_name}"
            if current is not None and same_account(k, current):
                text += " · same Convai account"
            return text

        cast(KeyField, self.fields["api_key"]).offer(candidates, label)


SORT_CHOICES = [
    ("name", "Name, A to Z"),
    ("-name", "Name, Z to A"),
    ("-updated", "Recently edited"),
    ("-synced", "Recently synced"),
    ("-created", "Newest"),
    ("created", "Oldest"),
]
assert all(value in SORTS for value, _ in SORT_CHOICES)


class FilterForm(forms.Form):
    """The list's search, filters and sort (a GET form; invalid values are left out). Voice,
    language and key are free values: one that matches nothing filters to nothing, so
    parsing needs no catalogue or facet query (an htmx refresh of the table does none)."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name or backstory…", "autocomplete": "off"}
        ),
    )
    voice = forms.CharField(label="Voice", required=False, max_length=255)
    language = forms.CharField(label="Language", required=False, max_length=40)
    key = forms.CharField(label="Bound key", required=False, max_length=40)
    unusable = forms.BooleanField(label="No usable key", required=False)
    changed = forms.BooleanField(label="Changed in Convai", required=False)
    sort = forms.ChoiceField(label="Sort", required=False, choices=SORT_CHOICES)

    def filters(self) -> CharacterFilters:
        """The validated search, filters and sort. A field with an invalid value (a search
        longer than 200 characters, an unknown sort) is left out: a shared or edited URL still
        lists the characters, filtered by what is valid in it."""
        self.is_valid()
        data = self.cleaned_data
        return CharacterFilters(
            q=(data.get("q") or "").strip(),
            voice=data.get("voice") or "",
            language=data.get("language") or "",
            key=data.get("key") or "",
            unusable=bool(data.get("unusable")),
            changed=bool(data.get("changed")),
            sort=data.get("sort") or DEFAULT_SORT,
        )


class BundleUploadForm(forms.Form):
    bundle = forms.FileField(
        label="Bundle file",
        help_text="A .json bundle exported from Convai Admin.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    key = KeyField(
        label="Import with your key",
        help_text="Characters its Convai account owns are updated; the others are created "
        "under it.",
    )

    def __init__(self, *args: Any, keys: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = self.fields["key"]
        assert isinstance(key, forms.ChoiceField)
        key.choices = [(str(k.pk), f"{k.label} (…{k.last_four})") for k in keys]
        if len(keys) == 1:
            self.fields["key"].initial = str(keys[0].pk)


class CopyForm(forms.Form):
    key = KeyField(label="Copy to your key")

    def __init__(self, *args: Any, keys: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = self.fields["key"]
        assert isinstance(key, forms.ChoiceField)
        key.choices = [(str(k.pk), account_key_label(k)) for k in keys]


def account_key_label(api_key: Any) -> str:
    """ "Production (…1a2b) · Studio account": the account a copy will land in."""
    account = str(getattr(api_key, "account_label", "") or "")
    label = f"{api_key.label} (…{api_key.last_four})"
    return f"{label} · {account}" if account else label
