"""Background job URLs (import all, sync all, job pages), team-scoped like the characters'."""

from django.urls import path

from . import job_views

app_name = "jobs"

TEAM = "t/<slug:team_slug>/"

urlpatterns = [
    path(TEAM + "characters/import-all/", job_views.import_all, name="import-all"),
    path(TEAM + "characters/sync-all/", job_views.sync_all, name="sync-all"),
    path(TEAM + "jobs/", job_views.job_list, name="job-list"),
    path(TEAM + "jobs/<int:job_id>/", job_views.job_detail, name="job-detail"),
    path(TEAM + "jobs/<int:job_id>/cancel/", job_views.job_cancel, name="job-cancel"),
    path(TEAM + "jobs/<int:job_id>/resume/", job_views.job_resume, name="job-resume"),
    path(TEAM + "jobs/<int:job_id>/retry/", job_views.job_retry, name="job-retry"),
]
