"""Read queries for job pages: each costs a fixed number of queries, whatever the job's size."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from teams.models import Team

from .models import Job, JobItem


def team_jobs(team: Team) -> QuerySet[Job]:
    """The team's jobs, newest first, with who started them."""
    return Job.objects.filter(team=team).select_related("created_by").order_by("-created_at", "-pk")


def team_job(team: Team, job_id: int) -> Job | None:
    return team_jobs(team).select_related("cancel_requested_by").filter(pk=job_id).first()


def recent_items(job: Job, limit: int = 10) -> list[JobItem]:
    """The items finished last (what a running job's page shows moving)."""
    return list(
        job.items.exclude(state=JobItem.State.PENDING).order_by("-finished_at", "-ordinal")[:limit]
    )


def job_counts_by_state(job: Job) -> dict[str, int]:
    rows = job.items.values("state").annotate(n=Count("pk")).order_by()
    return {row["state"]: row["n"] for row in rows}
