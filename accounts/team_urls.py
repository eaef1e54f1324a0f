"""Team, member and invitation URLs. Team-scoped ones live under /t/<team_slug>/."""

from django.urls import path

from . import team_views as views

urlpatterns = [
    path("teams/", views.team_list, name="team_list"),
    path("teams/new/", views.team_create, name="team_create"),
    path("teams/switch/", views.team_switch, name="team_switch"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("t/<slug:team_slug>/", views.team_overview, name="team_overview"),
    path("t/<slug:team_slug>/settings/", views.team_settings, name="team_settings"),
    path("t/<slug:team_slug>/leave/", views.team_leave, name="team_leave"),
    path("t/<slug:team_slug>/members/", views.team_members, name="team_members"),
    path(
        "t/<slug:team_slug>/members/<int:membership_id>/role/",
        views.member_role,
        name="member_role",
    ),
    path(
        "t/<slug:team_slug>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path("t/<slug:team_slug>/invitations/", views.team_invitations, name="team_invitations"),
    path(
        "t/<slug:team_slug>/invitations/new/",
        views.invitation_create,
        name="invitation_create",
    ),
    path(
        "t/<slug:team_slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
]
