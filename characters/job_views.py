"""Background job pages: import all of a key (choose a key, preview, choose, start), sync all,
the team's jobs, and one job's page (progress, per-item results, cancel, resume).

The job page is whole without JavaScript (a <progress>, the counts and the item list; reload
to see more); with htmx its progress section asks for itself every second while the job moves
and stops asking once it has finished. Everything comes from the database, so a reload or a
second browser shows the same state.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_tasks.base import Task

from convai_admin.errors import redirect_for
from convai_admin.htmx import render_page
from jobs import services as jobs
from jobs.models import Job, JobItem
from jobs.selectors import recent_items, team_job, team_jobs
from teams import policy
from teams.decorators import team_view
from teams.http import TeamRequest

from . import bulk, errors, selectors
from .bundles import import_bundle

ITEMS_PER_PAGE = 200


# What resumes each kind of job.
RESUMES: dict[str, Task[[int], str]] = {**bulk.TASKS, Job.Kind.IMPORT_BUNDLE: import_bundle}


def _job_url(request: TeamRequest, job: Job) -> str:
    return reverse("jobs:job-detail", args=[request.team.slug, job.pk])


def _busy(request: TeamRequest, error: jobs.JobBusy) -> HttpResponse:
    messages.error(request, error.message)
    if error.active is not None and error.active.team_id == request.team.pk:
        return redirect(_job_url(request, error.active))
    return redirect("jobs:job-list", request.team.slug)


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
            job = bulk.start_import_all(
                actor=request.membership,
                api_key_id=key_id,
                convai_ids=request.POST.getlist("convai_id"),
                all_new=request.POST.get("new") == "all",
                all_elsewhere=request.POST.get("elsewhere") == "all",
                skip=request.POST.getlist("skip"),
            )
        except jobs.JobBusy as error:
            return _busy(request, error)
        except errors.KeyNotUsable as error:
            # Recorded by the service; back to the member's own keys, so the redirected GET
            # does not refuse (and record) the same key a second time.
            messages.error(request, error.message)
            return redirect(request.path)
        except errors.CharacterError as error:
            messages.error(request, error.message)
            return redirect(f"{request.path}?key={key_id}")
        messages.success(request, f"Importing {job.total} character{'s' * (job.total != 1)}.")
        return redirect(_job_url(request, job))
    if key_id:
        try:
            context["preview"] = bulk.preview_import(actor=request.membership, api_key_id=key_id)
        except errors.CharacterError as error:
            context["error"] = error.message
        else:
            scope = jobs.key_scope(context["preview"].api_key)  # type: ignore[attr-defined]
            context["active"] = jobs.active_job(scope)
    return render_page(request, "characters/jobs/import_all.html", context, partial="preview")


@require_http_methods(["GET", "POST"])
@team_view("character.sync")
def sync_all(request: TeamRequest) -> HttpResponse:
    """GET: what a sync of every character will do and cost; POST: start it."""
    if request.method == "POST":
        try:
            job = bulk.start_sync_all(actor=request.membership)
        except jobs.JobBusy as error:
            return _busy(request, error)
        except errors.CharacterError as error:
            messages.error(request, error.message)
            return redirect("characters:character-list", request.team.slug)
        messages.success(request, f"Syncing {job.total} character{'s' * (job.total != 1)}.")
        return redirect(_job_url(request, job))
    keys = selectors.sync_plan(request.team)
    context = {
        "team": request.team,
        "keys": keys,
        "total": sum(row.characters for row in keys),
        "active": jobs.active_job(jobs.sync_scope(request.team.pk)),
    }
    return render_page(request, "characters/jobs/sync_all.html", context, partial="plan")


@require_GET
@team_view("job.view")
def job_list(request: TeamRequest) -> HttpResponse:
    context = {"team": request.team, "jobs": team_jobs(request.team)[:50]}
    return render_page(request, "characters/jobs/job_list.html", context, partial="jobs")


def _detail_context(request: TeamRequest, job: Job) -> dict[str, object]:
    """While the job moves: its latest results; once it stopped: every item, a page at a time,
    filtered by result. A fixed number of queries either way."""
    state = request.GET.get("state", "")
    context: dict[str, object] = {
        "team": request.team,
        "job": job,
        "state": state,
        "states": [(value, label) for value, label in JobItem.State.choices if value != "pending"],
        "pending": job.total - job.processed,
        "may_cancel": job.can_cancel and policy.may(request.membership, "job.cancel", job),
        "may_resume": job.can_resume and policy.may(request.membership, "job.resume", job),
        "may_retry": (
            job.failed > 0
            and job.kind in jobs.RETRYABLE
            and (job.is_finished or job.shown_state == Job.State.INTERRUPTED)
            and policy.may(request.membership, "job.retry", job)
        ),
    }
    if job.is_active:
        context["recent"] = recent_items(job)
        return context
    items = job.items.all()
    if state in JobItem.State.values:
        items = items.filter(state=state)
    page = Paginator(items.order_by("ordinal"), ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    context.update(page=page, items=list(page.object_list))
    return context


@require_GET
@team_view("job.view")
def job_detail(request: TeamRequest, job_id: int) -> HttpResponse:
    """The job page; htmx polls its `progress` partial (hx-trigger every 1s) while it moves."""
    job = team_job(request.team, job_id)
    if job is None:
        raise jobs.JobNotFound()
    context = _detail_context(request, job)
    if getattr(request, "htmx", False) and request.GET.get("part") == "progress":
        response = render_page(
            request, "characters/jobs/job_detail.html", context, partial="progress"
        )
        if not job.is_active:
            # htmx stops polling when told 286; the swapped-in partial has no trigger either.
            response.status_code = 286
        return response
    return render_page(request, "characters/jobs/job_detail.html", context, partial="progress")


@require_POST
@team_view("job.cancel")
def job_cancel(request: TeamRequest, job_id: int) -> HttpResponse:
    try:
        job = jobs.cancel_job(actor=request.membership, job_id=job_id)
    except jobs.JobFinished as error:
        messages.info(request, error.message)
        return redirect("jobs:job-detail", request.team.slug, job_id)
    except policy.NotAllowed as error:
        raise PermissionDenied(error.message) from None
    if job.state == Job.State.CANCELLED:
        messages.success(request, "Cancelled. What it had done is kept.")
    else:
        messages.success(request, "Cancelling: the job stops after the characters in hand.")
    return redirect(_job_url(request, job))


@require_POST
@team_view("job.resume")
def job_resume(request: TeamRequest, job_id: int) -> HttpResponse:
    job = team_job(request.team, job_id)
    if job is None:
        raise jobs.JobNotFound()
    try:
        job = jobs.resume_job(actor=request.membership, job_id=job.pk, task=RESUMES[job.kind])
    except jobs.JobBusy as error:
        return _busy(request, error)
    except policy.NotAllowed as error:
        raise PermissionDenied(error.message) from None
    except jobs.JobError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Resumed: it carries on with the characters not done yet.")
    return redirect(_job_url(request, job))


@require_POST
@team_view("job.retry")
def job_retry(request: TeamRequest, job_id: int) -> HttpResponse:
    """A new job over the failed items of this one; its page is where the member lands."""
    job = team_job(request.team, job_id)
    if job is None:
        raise jobs.JobNotFound()
    try:
        retry = jobs.retry_failed(actor=request.membership, job_id=job.pk, task=RESUMES[job.kind])
    except jobs.JobBusy as error:
        return _busy(request, error)
    except policy.NotAllowed as error:
        raise PermissionDenied(error.message) from None
    except jobs.JobError as error:
        messages.error(request, error.message)
        return redirect_for(request, _job_url(request, job))
    messages.success(
        request, f"Retrying {retry.total} failed item{'s' * (retry.total != 1)} of job #{job.pk}."
    )
    return redirect_for(request, _job_url(request, retry))
