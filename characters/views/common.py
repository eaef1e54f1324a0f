"""What the character pages share: finding the character, where to go next, the catalogue to
read, and turning a create/clone outcome into a page.

Thin by design, like teams.views: `team_view` checks the policy floor, forms validate,
`characters.services` does every Convai call, local write and audit event, and selectors read.
Domain errors become form errors or messages, and everything the member typed is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import reswap, retarget

from jobs import services as jobs
from jobs.models import Job
from jobs.views import job_url
from keys.models import ApiKey
from teams.http import TeamRequest

from .. import errors, selectors, services
from ..catalogue import Catalogue, LanguageNames, VoiceNames, display_names, load_catalogue
from ..forms import AdoptForm
from ..models import Character


def character_of(request: TeamRequest, character_id: int) -> Character:
    """One character of this team (deleted ones included), with `key_usable`; 404 otherwise."""
    character = selectors.team_character(request.team, character_id)
    if character is None:
        raise errors.CharacterNotFound()
    return character


def live_character(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Hand the view the live character instead of its ID. A deleted one cannot be acted on:
    the request goes to its (readable) page with a message, and the view never runs."""

    @wraps(view)
    def wrapper(request: TeamRequest, character_id: int, *args: Any, **kwargs: Any) -> HttpResponse:
        character = character_of(request, character_id)
        if character.is_deleted:
            messages.info(request, errors.CharacterDeleted.default_message)
            return redirect(detail_url(request, character))
        return view(request, character, *args, **kwargs)

    return wrapper


def detail_url(request: TeamRequest, character: Character) -> str:
    return reverse("characters:character-detail", args=[request.team.slug, character.pk])


def list_url(request: TeamRequest) -> str:
    return reverse("characters:character-list", args=[request.team.slug])


def names(api_key: ApiKey | None = None) -> tuple[VoiceNames, LanguageNames]:
    """Display names without a Convai call (catalogue.display_names)."""
    return display_names(api_key)


def catalogue_key(
    request: TeamRequest, *, character: Character | None = None, api_key_id: Any = None
) -> ApiKey | None:
    """The key to read the (account-independent) catalogues with: the one chosen in the form,
    else the character's bound key when usable, else the member's first verified key."""
    own = list(selectors.usable_keys_for(request.user))
    if api_key_id:
        chosen = next((k for k in own if str(k.pk) == str(api_key_id)), None)
        if chosen is not None:
            return chosen
    if character is not None and getattr(character, "key_usable", False):
        return character.bound_key
    return own[0] if own else None


def catalogue_for(request: TeamRequest, **kwargs: Any) -> Catalogue:
    return load_catalogue(catalogue_key(request, **kwargs))


def int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def say_warnings(request: TeamRequest, saved: services.Saved) -> None:
    for warning in saved.warnings:
        messages.warning(request, warning)


def to_new(request: TeamRequest, saved: services.Saved, message: str) -> HttpResponse:
    """After a character came into the team: its warnings, `message`, and its page."""
    say_warnings(request, saved)
    messages.success(request, message)
    return redirect(detail_url(request, saved.character))


def to_existing(request: TeamRequest, error: errors.AlreadyInTeam) -> HttpResponse:
    """The team has it already: say so and show the one it has."""
    messages.info(request, error.message)
    return redirect(detail_url(request, error.character))


def brought_in(
    request: TeamRequest,
    bring: Callable[[], services.Saved],
    success: Callable[[Character], str],
) -> HttpResponse:
    """Run an import or an adopt: the new character's page with `success`, or the one the
    team already has. Any other domain error is the caller's to show."""
    try:
        saved = bring()
    except errors.AlreadyInTeam as error:
        return to_existing(request, error)
    return to_new(request, saved, success(saved.character))


def made_on_convai(
    request: TeamRequest,
    form: Form,
    make: Callable[[], services.Saved],
    *,
    success: Callable[[Character], str],
    name: str,
    own_key: ApiKey | None,
    key_field: str | None = None,
) -> tuple[HttpResponse | None, AdoptForm | None]:
    """Run a create or a clone: on success, the way to the new character; on failure, the
    message on the form (the input stays), and "Check Convai" when the write timed out and may
    have happened under one of the member's own keys (`own_key`). `key_field` takes a refusal
    of the chosen key."""
    try:
        saved = make()
    except errors.OperationDone as error:
        # The same form sent twice: the first one made it; show that one.
        messages.info(request, error.message)
        target = error.character
        return redirect(detail_url(request, target) if target else list_url(request)), None
    except errors.KeyNotUsable as error:
        form.add_error(key_field, error.message)
    except errors.ConvaiFailed as error:
        form.add_error(None, error.message)
        if error.maybe_happened and own_key is not None:
            return None, AdoptForm(initial={"api_key": own_key.pk, "name": name})
    except errors.CharacterError as error:
        form.add_error(None, error.message)
    else:
        return to_new(request, saved, success(saved.character)), None
    return None, None


def job_started(
    request: TeamRequest, key_id: str, start: Callable[[], Job], message: Callable[[Job], str]
) -> HttpResponse:
    """Start a job for the chosen key (import all, a bundle import): its page with `message`.
    A refused key goes back to the member's own keys (recorded by the service: the redirected
    GET must not refuse it a second time); any other refusal back to this key's preview.
    JobBusy is the caller's to answer."""
    try:
        job = start()
    except errors.KeyNotUsable as error:
        messages.error(request, error.message)
        return redirect(request.path)
    except errors.CharacterError as error:
        messages.error(request, error.message)
        return redirect(f"{request.path}?key={key_id}")
    messages.success(request, message(job))
    return redirect(job_url(request, job))


def preview_of_key(context: dict[str, Any], preview: Callable[[], Any]) -> None:
    """What a job would do with the chosen key, into `context`: "preview" and "active" (the
    job that holds the key now, if any), or the refusal as "error"."""
    try:
        result = preview()
    except errors.CharacterError as error:
        context["error"] = error.message
    else:
        context["preview"] = result
        context["active"] = jobs.active_job(jobs.key_scope(result.api_key))


def changed_names(saved: services.Saved) -> str:
    return ", ".join(change.label.lower() for change in saved.changes)


def sent_names(saved: services.Saved) -> str:
    """Every field sent, overwritten ones included ("name, backstory")."""
    return ", ".join(label.lower() for label in saved.sent_labels)


def overwrite_note(saved: services.Saved) -> str:
    """After an "Overwrite": which of Convai's own changes were replaced by ours."""
    if not saved.overwritten:
        return ""
    changed = ", ".join(change.label.lower() for change in saved.overwritten)
    return f" Convai's own changes to {changed} were replaced with this dashboard's version."


def answer_in_dialog(request: TeamRequest, response: HttpResponse) -> HttpResponse:
    """An htmx POST answered with the form again (an error) goes back into the dialog, not
    into the element that would have taken the success."""
    if request.htmx and request.method == "POST":
        reswap(retarget(response, "#modal-content"), "innerHTML")
    return response
