"""Voice and language names for templates (a builtin library: no `{% load %}` needed), so the
history, the restore dialog, import all and the bundle preview say "German", not "de-DE".
Names come from the shipped catalogue (catalogue.voice_label): never a Convai call per row."""

from __future__ import annotations

from typing import Any

from django import template

from characters.catalogue import language_label, voice_label

register = template.Library()


@register.filter
def voice_name(value: Any) -> str:
    return voice_label(str(value or ""))


@register.filter
def language_name(code: Any) -> str:
    return language_label(str(code or ""))


@register.filter
def language_names(codes: Any) -> str:
    """A list of language codes as names, comma separated."""
    return ", ".join(language_label(str(code)) for code in codes or [])
