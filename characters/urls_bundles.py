"""Bundle URLs (export, import, copy to another key), team-scoped like the characters'."""

from django.urls import path

from . import bundle_views

app_name = "bundles"

TEAM = "t/<slug:team_slug>/characters/"

urlpatterns = [
    path(TEAM + "export/", bundle_views.export_list, name="export"),
    path(TEAM + "<int:character_id>/export/", bundle_views.export_one, name="export-one"),
    path(TEAM + "<int:character_id>/copy/", bundle_views.copy, name="copy"),
    path(TEAM + "bundles/import/", bundle_views.import_bundle, name="import"),
    path(TEAM + "bundles/<str:token>/", bundle_views.preview, name="preview"),
]
