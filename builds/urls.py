"""Build pages (team-scoped) and the public token endpoint a game calls."""

from django.urls import path

from . import api, views

app_name = "builds"

TEAM = "t/<slug:team_slug>/"

urlpatterns = [
    path(TEAM + "builds/", views.build_list, name="build-list"),
    path(TEAM + "builds/new/", views.build_create, name="build-create"),
    path(TEAM + "builds/<uuid:build_id>/", views.build_detail, name="build-detail"),
    path(TEAM + "builds/<uuid:build_id>/settings/", views.build_update, name="build-update"),
    path(TEAM + "builds/<uuid:build_id>/rotate/", views.build_rotate, name="build-rotate"),
    path(TEAM + "builds/<uuid:build_id>/revoke/", views.build_revoke, name="build-revoke"),
    path("api/builds/<uuid:build_id>/token", api.token, name="token"),
]
