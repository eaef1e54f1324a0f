"""Bundle pages: export (the list's selection, or one character), import (upload, preview,
confirm: a background job), and "Copy to another key". Thin: the services in
characters/bundles/ and characters.copying decide, audit and talk to Convai."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from convai_admin.errors import redirect_for
from convai_admin.htmx import render_page
from jobs import services as jobs
from teams.decorators import team_view
from teams.http import TeamRequest

from .. import copying, errors, selectors
from ..bundles import exporting, importing, schema, uploads
from ..forms import BundleUploadForm, CopyForm, FilterForm
from ..models import Character
from .common import character_of, detail_url, job_started, preview_of_key


def _attachment(export: exporting.Export) -> HttpResponse:
    response = StreamingHttpResponse(export.chunks, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["X-Bundle-Count"] = str(export.count)
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"
    # team_view's signature says HttpResponse; a streaming response serves the same caller.
    return cast(HttpResponse, response)


@require_GET
@team_view("character.export")
def export_list(request: TeamRequest) -> HttpResponse:
    """The list's current selection (same query parameters as the list page) as a bundle."""
    # The bundle's selection names the filters it records (not "changed in Convai"), as
    # before; the sort does not matter to an export.
    filters = replace(FilterForm(request.GET).filters(), changed=False)
    return _attachment(exporting.export_characters(actor=request.membership, filters=filters))


@require_GET
@team_view("character.export")
def export_one(request: TeamRequest, character_id: int) -> HttpResponse:
    export = exporting.export_characters(actor=request.membership, character_id=character_id)
    return _attachment(export)


@require_http_methods(["GET", "POST"])
@team_view("character.import")
def import_bundle(request: TeamRequest) -> HttpResponse:
    """Upload a bundle and choose the key; a valid file goes on to its preview."""
    keys = list(selectors.usable_keys_for(request.user))
    form = BundleUploadForm(keys=keys)
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        form = BundleUploadForm(request.POST, request.FILES, keys=keys)
        if form.is_valid():
            try:
                kept = uploads.upload_bundle(
                    actor=request.membership,
                    api_key_id=form.cleaned_data["key"],
                    upload=form.cleaned_data["bundle"],
                )
            except errors.KeyNotUsable as refused:
                form.add_error("key", refused.message)
            except schema.BundleInvalid as refusal:
                problems = refusal.problems  # listed above the form, one per line
                form.add_error("bundle", "Choose a corrected file (see the problems above).")
                status = 400
            except uploads.UploadRefused as refusal:
                form.add_error("bundle", refusal.message)
                status = 429 if refusal.reason == "rate_limited" else 507
            else:
                count = len(kept.bundle.characters)
                messages.success(
                    request, f"The bundle is valid: {count} character{'s' * (count != 1)}."
                )
                url = reverse("bundles:preview", args=[request.team.slug, kept.token])
                return redirect(f"{url}?key={form.cleaned_data['key']}")
        else:
            status = 400
    context = {
        "team": request.team,
        "form": form,
        "api_keys": keys,
        "max_mb": _max_mb(),
        "problems": problems,
    }
    response = render_page(request, "characters/bundles/import.html", context, partial="upload")
    response.status_code = status
    return response


def _max_mb() -> str:
    return f"{schema.max_bytes() / (1024 * 1024):g} MB"


@require_http_methods(["GET", "POST"])
@team_view("character.import")
def preview(request: TeamRequest, token: str) -> HttpResponse:
    """GET: what the bundle would do with the chosen key. POST: start the job."""
    keys = list(selectors.usable_keys_for(request.user))
    key_id = request.POST.get("key") or request.GET.get("key") or (str(keys[0].pk) if keys else "")
    if request.method == "POST":
        if request.POST.get("discard"):
            uploads.discard_upload(actor=request.membership, token=token)
            messages.info(request, "The uploaded bundle was discarded. Nothing was imported.")
            return redirect("characters:character-list", request.team.slug)
        try:
            return job_started(
                request,
                key_id,
                lambda: importing.start_bundle_import(
                    actor=request.membership,
                    api_key_id=key_id,
                    token=token,
                    # Exceptions only: one field per character left out, never one per character.
                    skip=set(request.POST.getlist("skip")),
                ),
                lambda job: f"Importing the bundle: {job.total} character{'s' * (job.total != 1)}.",
            )
        except jobs.JobBusy as error:
            messages.error(request, error.message)
            if error.active is not None and error.active.team_id == request.team.pk:
                return redirect("jobs:job-detail", request.team.slug, error.active.pk)
            return redirect(f"{request.path}?key={key_id}")
    context: dict[str, Any] = {
        "team": request.team,
        "token": token,
        "api_keys": keys,
        "key_id": key_id,
    }
    try:
        bundle, filename = uploads.load_upload(actor=request.membership, token=token)
    except errors.CharacterError as error:
        messages.error(request, error.message)
        return redirect("bundles:import", request.team.slug)
    context.update(bundle=bundle, filename=filename)
    if key_id:
        preview_of_key(
            context,
            lambda: importing.preview_bundle(
                actor=request.membership, api_key_id=key_id, bundle=bundle
            ),
        )
    return render_page(request, "characters/bundles/preview.html", context, partial="preview")


@require_http_methods(["GET", "POST"])
@team_view("character.copy")
def copy(request: TeamRequest, character_id: int) -> HttpResponse:
    """Copy to another key: a dialog (or a page without JavaScript), then the copy's page."""
    character = character_of(request, character_id)
    if character.is_deleted:
        messages.error(request, errors.CharacterDeleted.default_message)
        return redirect(detail_url(request, character))
    keys = selectors.copy_targets(request.membership, character)
    form = CopyForm(request.POST if request.method == "POST" else None, keys=keys)
    if request.method == "POST" and form.is_valid():
        try:
            saved = copying.copy_character(
                actor=request.membership,
                character_id=character.pk,
                api_key_id=form.cleaned_data["key"],
            )
        except errors.CharacterError as error:
            form.add_error(None, error.message)
        else:
            made: Character = saved.character
            messages.success(
                request,
                f"“{made.name}” was copied to “{made.bound_key.label if made.bound_key else ''}” "
                f"from revision {made.copied_from_revision}.",
            )
            for warning in saved.warnings:
                messages.warning(request, warning)
            url = reverse("characters:character-detail", args=[request.team.slug, made.pk])
            return redirect_for(request, url)
    context = {"team": request.team, "character": character, "form": form, "api_keys": keys}
    return render_page(request, "characters/bundles/copy.html", context, partial="confirm")
