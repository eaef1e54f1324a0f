"""Team, member and invitation URLs. Team-scoped ones live under /t/<team_slug>/."""

from django.urls import path

from . import lifecycle_views, views

app_name = "teams"

urlpatterns = [
    path("", views.home, name="home"),
    path("teams/", views.team_list, name="team-list"),
    path("teams/new/", views.team_create, name="team-create"),
    path("teams/switch/", views.team_switch, name="team-switch"),
    path("invitations/join/", views.invitation_join, name="invitation-join"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("t/<slug:team_slug>/", views.team_overview, name="overview"),
    path("t/<slug:team_slug>/settings/", views.team_settings, name="settings"),
    path("t/<slug:team_slug>/settings/transfer/", lifecycle_views.team_transfer, name="transfer"),
    path("t/<slug:team_slug>/settings/archive/", lifecycle_views.team_archive, name="archive"),
    path(
        "t/<slug:team_slug>/settings/unarchive/", lifecycle_views.team_unarchive, name="unarchive"
    ),
    path("t/<slug:team_slug>/settings/delete/", lifecycle_views.team_delete, name="delete"),
    path(
        "t/<slug:team_slug>/settings/two-factor/",
        views.team_two_factor,
        name="settings-two-factor",
    ),
    path("t/<slug:team_slug>/leave/", views.team_leave, name="leave"),
    path("t/<slug:team_slug>/members/", views.team_members, name="members"),
    path(
        "t/<slug:team_slug>/members/<int:membership_id>/role/",
        views.member_role,
        name="member-role",
    ),
    path(
        "t/<slug:team_slug>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
    path(
        "t/<slug:team_slug>/members/<int:membership_id>/unlock/",
        views.member_unlock,
        name="member-unlock",
    ),
    path("t/<slug:team_slug>/invitations/", views.team_invitations, name="invitations"),
    path(
        "t/<slug:team_slug>/invitations/new/",
        views.invitation_create,
        name="invitation-create",
    ),
    path(
        "t/<slug:team_slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation-revoke",
    ),
]
