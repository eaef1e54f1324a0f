"""The form for adding a personal Convai API key.

The key field never renders its value back (render_value=False): after any error the member
types it again, so a key is never written into a page."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import User
from convai_admin.validators import ReadableTextMixin, reject_bidi_controls

from .models import ApiKey


class ApiKeyForm(ReadableTextMixin, forms.Form):
    label = forms.CharField(
        max_length=80,
        help_text="A name you will recognise later, e.g. “Studio production”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        validators=[reject_bidi_controls],
    )
    key = forms.CharField(
        label="Convai API key",
        min_length=8,
        max_length=200,
        help_text="Find it in Convai under your profile → API key. It is encrypted here and "
        "never shown again; only its last four characters are.",
        widget=forms.PasswordInput(
            render_value=False,
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"},
        ),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_label(self) -> str:
        label: str = self.cleaned_data["label"].strip()
        taken = ApiKey.objects.filter(
            owner=self.user, revoked_at__isnull=True, label__iexact=label
        ).exists()
        if taken:
            raise forms.ValidationError(
                "You already have a key with this label. Choose another name, or revoke the "
                "old key first."
            )
        return label

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"].strip()
        if any(char.isspace() for char in key):
            raise forms.ValidationError(
                "An API key has no spaces or line breaks. Copy it again from Convai."
            )
        return key
