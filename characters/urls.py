"""Character URLs, all team-scoped under /t/<team_slug>/characters/.

Two lists, included under two namespaces by convai_admin/urls.py: `urlpatterns`
(`characters:`) for the character pages, `bundle_urlpatterns` (`bundles:`) for export,
import and "Copy to another key".
"""

from django.urls import path

from .views import bundles, create, detail, dialogs, edit, listing, revisions

app_name = "characters"

TEAM = "t/<slug:team_slug>/characters/"
ONE = TEAM + "<int:character_id>/"

urlpatterns = [
    path(TEAM, listing.character_list, name="character-list"),
    path(TEAM + "new/", create.character_create, name="character-create"),
    path(TEAM + "import/", create.character_import, name="character-import"),
    path(TEAM + "adopt/", create.character_adopt, name="character-adopt"),
    path(TEAM + "voices/", create.voice_options, name="voice-options"),
    path(
        TEAM + "operations/<int:operation_id>/check/",
        listing.operation_check,
        name="operation-check",
    ),
    path(
        TEAM + "operations/<int:operation_id>/dismiss/",
        listing.operation_dismiss,
        name="operation-dismiss",
    ),
    path(ONE, detail.character_detail, name="character-detail"),
    path(ONE + "edit/", edit.character_edit, name="character-edit"),
    path(ONE + "clone/", dialogs.character_clone, name="character-clone"),
    path(ONE + "delete/", dialogs.character_delete, name="character-delete"),
    path(ONE + "remove/", dialogs.character_remove, name="character-remove"),
    path(ONE + "rebind/", dialogs.character_rebind, name="character-rebind"),
    path(ONE + "sync/", edit.character_sync, name="character-sync"),
    path(ONE + "keep-ours/", edit.character_keep_ours, name="character-keep-ours"),
    path(ONE + "languages/", edit.character_languages, name="character-languages"),
    path(ONE + "history/", revisions.character_history, name="character-history"),
    path(ONE + "compare/", revisions.character_compare, name="character-compare"),
    path(
        ONE + "versions/<int:number>/restore/",
        revisions.character_restore,
        name="character-restore",
    ),
]

bundle_urlpatterns = [
    path(TEAM + "export/", bundles.export_list, name="export"),
    path(ONE + "export/", bundles.export_one, name="export-one"),
    path(ONE + "copy/", bundles.copy, name="copy"),
    path(TEAM + "bundles/import/", bundles.import_bundle, name="import"),
    path(TEAM + "bundles/<str:token>/", bundles.preview, name="preview"),
]
