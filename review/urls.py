"""The team's audit log, under /t/<team_slug>/audit/ (namespace `audit:`, as before the pages
left audit/: see review/views.py)."""

from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("t/<slug:team_slug>/audit/", views.audit_log, name="log"),
    path("t/<slug:team_slug>/audit/<int:event_id>/", views.audit_event, name="event"),
    path(
        "t/<slug:team_slug>/audit/export.csv", views.audit_export, {"fmt": "csv"}, name="export-csv"
    ),
    path(
        "t/<slug:team_slug>/audit/export.jsonl",
        views.audit_export,
        {"fmt": "jsonl"},
        name="export-jsonl",
    ),
    path("t/<slug:team_slug>/audit/verify/", views.audit_verify, name="verify"),
]
