"""Characters coming into the team: create on Convai, import one found on Convai, adopt one
a timed-out create or clone made ("Check Convai"), and the voice picker of the forms."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from teams.decorators import team_view
from teams.http import TeamRequest

from .. import errors, importing, selectors, services
from ..catalogue import Catalogue
from ..forms import (
    AdoptForm,
    CreateCharacterForm,
    ImportConfirmForm,
    ImportFindForm,
    voice_choices,
)
from ..presenters import language_labels, voice_info
from .common import brought_in, catalogue_for, list_url, made_on_convai, names

CONVAI_ID = re.compile(r"^[0-9a-fA-F-]{16,64}$")


@require_http_methods(["GET", "POST"])
@team_view("character.create")
def character_create(request: TeamRequest) -> HttpResponse:
    api_keys = selectors.usable_keys_for(request.user)
    has_keys = api_keys.exists()
    chosen_key = request.POST.get("api_key") or request.GET.get("api_key")
    catalogue = catalogue_for(request, api_key_id=chosen_key) if has_keys else Catalogue()
    form = CreateCharacterForm(
        request.POST if request.method == "POST" else None,
        catalogue=catalogue,
        api_keys=api_keys,
    )
    adopt = None
    if request.method == "POST" and has_keys and form.is_valid():
        key_id = form.cleaned_data["api_key"]
        done, adopt = made_on_convai(
            request,
            form,
            lambda: services.create_character(
                actor=request.membership,
                api_key_id=key_id,
                token=form.cleaned_data["token"],
                **form.fields_data(),
            ),
            success=lambda character: f"“{character.name}” was created on Convai.",
            name=form.cleaned_data["name"],
            own_key=next((k for k in api_keys if str(k.pk) == key_id), None),
            key_field="api_key",
        )
        if done is not None:
            return done
    context = {
        "team": request.team,
        "form": form,
        "catalogue": catalogue,
        "has_keys": has_keys,
        "adopt": adopt,
        "mode": "create",
    }
    return render(request, "characters/character_form.html", context)


@require_POST
@team_view("character.import")
def character_adopt(request: TeamRequest) -> HttpResponse:
    """ "Check Convai" after a create or clone that timed out: adopt it if it was made."""
    form = AdoptForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That check could not be started: go back and try again.")
        return redirect(list_url(request))
    try:
        return brought_in(
            request,
            lambda: importing.adopt_from_convai(
                actor=request.membership,
                api_key_id=form.cleaned_data["api_key"],
                name=form.cleaned_data["name"],
            ),
            lambda found: f"Found “{found.name}” on Convai: it was created and is now here.",
        )
    except errors.CharacterError as error:
        messages.error(request, error.message)
        return redirect(list_url(request))


def _found_context(found: importing.Found | None) -> dict[str, Any]:
    """The character found on Convai, named, with the form that confirms its import."""
    if found is None:
        return {
            "found": None,
            "found_fields": None,
            "found_voice": None,
            "found_languages": [],
            "confirm": None,
        }
    voice_names, language_names = names(found.api_key)
    details = found.details
    return {
        "found": found,
        "found_fields": found.fields,
        "found_voice": voice_info(details.voice_type, voice_names),
        "found_languages": language_labels(details.language_codes, language_names),
        "confirm": ImportConfirmForm(
            initial={"api_key": found.api_key.pk, "convai_id": details.character_id}
        ),
    }


@require_http_methods(["GET", "POST"])
@team_view("character.import")
def character_import(request: TeamRequest) -> HttpResponse:
    """Find a character on Convai by ID or exact name, show it, then import it."""
    api_keys = selectors.usable_keys_for(request.user)
    found = None
    step = request.POST.get("step", "find")
    form = ImportFindForm(
        request.POST if request.method == "POST" and step == "find" else None,
        api_keys=api_keys,
        initial={"lookup": request.GET.get("lookup", "")},
    )
    if request.method == "POST" and step == "import":
        confirm = ImportConfirmForm(request.POST)
        # The lookup form shows what was confirmed, so a failure keeps it for another try.
        form = ImportFindForm(
            {"api_key": request.POST.get("api_key", ""), "lookup": request.POST.get("convai_id")},
            api_keys=api_keys,
        )
        form.is_valid()
        if confirm.is_valid():
            try:
                return brought_in(
                    request,
                    lambda: importing.import_character(
                        actor=request.membership,
                        api_key_id=confirm.cleaned_data["api_key"],
                        convai_id=confirm.cleaned_data["convai_id"],
                    ),
                    lambda imported: f"Imported “{imported.name}” from Convai.",
                )
            except errors.CharacterError as error:
                form.add_error(None, error.message)
        else:
            form.add_error(None, "That import could not be read: look the character up again.")
    elif request.method == "POST" and form.is_valid():
        lookup = form.cleaned_data["lookup"]
        by_id = bool(CONVAI_ID.match(lookup))
        try:
            found = importing.find_remote(
                actor=request.membership,
                api_key_id=form.cleaned_data["api_key"],
                convai_id=lookup if by_id else "",
                name="" if by_id else lookup,
            )
        except errors.CharacterError as error:
            form.add_error("lookup" if "not" in error.message.lower() else None, error.message)
    context = {
        "team": request.team,
        "form": form,
        "has_keys": api_keys.exists(),
        **_found_context(found),
    }
    return render(request, "characters/character_import.html", context)


@require_GET
@team_view("character.update")
def voice_options(request: TeamRequest) -> HttpResponse:
    """The voice picker's options, filtered server-side by search text and languages."""
    character = None
    if request.GET.get("character", "").isdigit():
        character = selectors.team_character(request.team, int(request.GET["character"]))
    catalogue = catalogue_for(
        request, character=character, api_key_id=request.GET.get("api_key") or None
    )
    chosen = request.GET.get("voice_type", "")
    current = character.voice_type if character is not None else ""
    valid = {v.voice_value for v in catalogue.voices} | ({current} if current else set())
    choices, matched = voice_choices(
        catalogue,
        query=request.GET.get("voice_q", ""),
        languages=request.GET.getlist("language_codes"),
        keep=[v for v in (chosen, current) if v in valid],
    )
    context = {
        "choices": choices,
        "matched": matched,
        "total": len(catalogue.voices),
        "chosen": chosen,
        "catalogue": catalogue,
    }
    return render(request, "characters/voice_options.html", context)
