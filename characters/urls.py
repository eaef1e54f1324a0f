"""Character URLs, all team-scoped under /t/<team_slug>/characters/."""

from django.urls import path

from . import views

app_name = "characters"

ONE = "t/<slug:team_slug>/characters/<int:character_id>/"

urlpatterns = [
    path("t/<slug:team_slug>/characters/", views.character_list, name="character-list"),
    path("t/<slug:team_slug>/characters/new/", views.character_create, name="character-create"),
    path("t/<slug:team_slug>/characters/import/", views.character_import, name="character-import"),
    path("t/<slug:team_slug>/characters/adopt/", views.character_adopt, name="character-adopt"),
    path("t/<slug:team_slug>/characters/voices/", views.voice_options, name="voice-options"),
    path(
        "t/<slug:team_slug>/characters/operations/<int:operation_id>/check/",
        views.operation_check,
        name="operation-check",
    ),
    path(ONE, views.character_detail, name="character-detail"),
    path(ONE + "edit/", views.character_edit, name="character-edit"),
    path(ONE + "clone/", views.character_clone, name="character-clone"),
    path(ONE + "delete/", views.character_delete, name="character-delete"),
    path(ONE + "remove/", views.character_remove, name="character-remove"),
    path(ONE + "rebind/", views.character_rebind, name="character-rebind"),
    path(ONE + "sync/", views.character_sync, name="character-sync"),
    path(ONE + "keep-ours/", views.character_keep_ours, name="character-keep-ours"),
    path(ONE + "languages/", views.character_languages, name="character-languages"),
    path(ONE + "history/", views.character_history, name="character-history"),
    path(ONE + "compare/", views.character_compare, name="character-compare"),
    path(
        ONE + "versions/<int:number>/restore/",
        views.character_restore,
        name="character-restore",
    ),
]
