"""Background job URLs, team-scoped: the job pages, and the start pages the registered job
kinds bring (e.g. `jobs:import-all`, `jobs:sync-all` from characters/job_kinds.py)."""

from django.urls import path

from . import registry, views

app_name = "jobs"

TEAM = "t/<slug:team_slug>/"

urlpatterns = [
    *(path(TEAM + page.route, page.view, name=page.name) for page in registry.start_pages()),
    path(TEAM + "jobs/", views.job_list, name="job-list"),
    path(TEAM + "jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path(TEAM + "jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path(TEAM + "jobs/<int:job_id>/resume/", views.job_resume, name="job-resume"),
    path(TEAM + "jobs/<int:job_id>/retry/", views.job_retry, name="job-retry"),
]
