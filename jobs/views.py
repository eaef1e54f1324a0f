"""Background job pages: the team's jobs, and one job's page (progress, per-item results,
cancel, resume, retry). The pages that start a job belong to the app whose work it is and are
mounted here through its kind's registration (jobs/registry.py; see jobs/urls.py).

The job page is whole without JavaScript (a <progress>, the counts and the item list; reload
to see more); with htmx its progress section asks for itself every second while the job moves
and stops asking once it has finished. Everything comes from the database, so a reload or a
second browser shows the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from convai_admin.errors import redirect_for
from convai_admin.htmx import render_page
from teams import policy
from teams.decorators import team_view
from teams.http import TeamRequest

from . import registry
from . import services as jobs
from .models import Job, JobItem
from .selectors import recent_items, team_job, team_jobs

ITEMS_PER_PAGE = 200


def job_url(request: TeamRequest, job: Job) -> str:
    return reverse("jobs:job-detail", args=[request.team.slug, job.pk])


def busy_response(request: TeamRequest, error: jobs.JobBusy) -> HttpResponse:
    """Another job holds the scope: say so, and show that job (if it is this team's)."""
    messages.error(request, error.message)
    if error.active is not None and error.active.team_id == request.team.pk:
        return redirect(job_url(request, error.active))
    return redirect("jobs:job-list", request.team.slug)


@require_GET
@team_view("job.view")
def job_list(request: TeamRequest) -> HttpResponse:
    context = {"team": request.team, "jobs": team_jobs(request.team)[:50]}
    return render_page(request, "jobs/job_list.html", context, partial="jobs")


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
        "may_retry": (jobs.may_retry_now(job) and policy.may(request.membership, "job.retry", job)),
        "item_url": kind.item_url if (kind := registry.find(job.kind)) else "",
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
        response = render_page(request, "jobs/job_detail.html", context, partial="progress")
        if not job.is_active:
            # htmx stops polling when told 286; the swapped-in partial has no trigger either.
            response.status_code = 286
        return response
    return render_page(request, "jobs/job_detail.html", context, partial="progress")


def _refusal_is_403(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Cancel, resume and retry are the starter's or an Admin's (the policy's object rule, which
    the service checks and records): a refusal answers 403, as the floor's does."""

    @wraps(view)
    def wrapper(request: TeamRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except policy.NotAllowed as error:
            raise PermissionDenied(error.message) from None

    return wrapper


def _job_of(request: TeamRequest, job_id: int) -> Job:
    job = team_job(request.team, job_id)
    if job is None:
        raise jobs.JobNotFound()
    return job


@require_POST
@team_view("job.cancel")
@_refusal_is_403
def job_cancel(request: TeamRequest, job_id: int) -> HttpResponse:
    try:
        job = jobs.cancel_job(actor=request.membership, job_id=job_id)
    except jobs.JobFinished as error:
        messages.info(request, error.message)
        return redirect("jobs:job-detail", request.team.slug, job_id)
    if job.state == Job.State.CANCELLED:
        messages.success(request, "Cancelled. What it had done is kept.")
    else:
        messages.success(request, "Cancelling: the job stops after the characters in hand.")
    return redirect(job_url(request, job))


@require_POST
@team_view("job.resume")
@_refusal_is_403
def job_resume(request: TeamRequest, job_id: int) -> HttpResponse:
    job = _job_of(request, job_id)
    try:
        job = jobs.resume_job(actor=request.membership, job_id=job.pk)
    except jobs.JobBusy as error:
        return busy_response(request, error)
    except jobs.JobError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Resumed: it carries on with the characters not done yet.")
    return redirect(job_url(request, job))


@require_POST
@team_view("job.retry")
@_refusal_is_403
def job_retry(request: TeamRequest, job_id: int) -> HttpResponse:
    """A new job over the failed items of this one; its page is where the member lands."""
    job = _job_of(request, job_id)
    try:
        retry = jobs.retry_failed(actor=request.membership, job_id=job.pk)
    except jobs.JobBusy as error:
        return busy_response(request, error)
    except jobs.JobError as error:
        messages.error(request, error.message)
        return redirect_for(request, job_url(request, job))
    messages.success(
        request, f"Retrying {retry.total} failed item{'s' * (retry.total != 1)} of job #{job.pk}."
    )
    return redirect_for(request, job_url(request, retry))
