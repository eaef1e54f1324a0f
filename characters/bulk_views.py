"""The start pages of the bulk jobs (registered in characters/job_kinds.py, mounted as
`jobs:import-all` and `jobs:sync-all`): import all of a key (choose a key, preview, choose,
start) and sync all. Once started, a job is followed on the jobs pages (jobs/views.py)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from convai_admin.htmx import render_page
from jobs import services as jobs
from jobs.views import busy_response, job_url
from teams.decorators import team_view
from teams.http import TeamRequest

from . import errors, selectors
from .bulk import importing, syncing
from .views.common import job_started, preview_of_key


@require_http_methods(["GET", "POST"])
@team_view("character.import")
def import_all(request: TeamRequest) -> HttpResponse:
    """GET: choose a key; GET ?key=: the key's characters, previewed; POST: start the job."""
    api_keys = list(selectors.usable_keys_for(request.user))
    key_id = request.POST.get("key") or request.GET.get("key") or ""
    if len(api_keys) == 1 and not key_id:
        key_id = str(api_keys[0].pk)
    context: dict[str, object] = {"team": request.team, "api_keys": api_keys, "key_id": key_id}
    if request.method == "POST":
        try:
            # The page sends the exceptions, not one field per character: "new=all" takes
            # every new one but those ticked "Leave out" (skip); characters another team has
            # too are added one by one (convai_id) or all at once (elsewhere=all).
            return job_started(
                request,
                key_id,
                lambda: importing.start_import_all(
                    actor=request.membership,
                    api_key_id=key_id,
                    convai_ids=request.POST.getlist("convai_id"),
                    all_new=request.POST.get("new") == "all",
                    all_elsewhere=request.POST.get("elsewhere") == "all",
                    skip=request.POST.getlist("skip"),
                ),
                lambda job: f"Importing {job.total} character{'s' * (job.total != 1)}.",
            )
        except jobs.JobBusy as error:
            return busy_response(request, error)
    if key_id:
        preview_of_key(
            context, lambda: importing.preview_import(actor=request.membership, api_key_id=key_id)
        )
    return render_page(request, "characters/bulk/import_all.html", context, partial="preview")


@require_http_methods(["GET", "POST"])
@team_view("character.sync")
def sync_all(request: TeamRequest) -> HttpResponse:
    """GET: what a sync of every character will do and cost; POST: start it."""
    if request.method == "POST":
        try:
            job = syncing.start_sync_all(actor=request.membership)
        except jobs.JobBusy as error:
            return busy_response(request, error)
        except errors.CharacterError as error:
            messages.error(request, error.message)
            return redirect("characters:character-list", request.team.slug)
        messages.success(request, f"Syncing {job.total} character{'s' * (job.total != 1)}.")
        return redirect(job_url(request, job))
    keys = selectors.sync_plan(request.team)
    context = {
        "team": request.team,
        "keys": keys,
        "total": sum(row.characters for row in keys),
        "active": jobs.active_job(jobs.sync_scope(request.team.pk)),
    }
    return render_page(request, "characters/bulk/sync_all.html", context, partial="plan")
