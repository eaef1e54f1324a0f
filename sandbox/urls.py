"""The emulated Convai API, mounted at /sandbox/ (answers 404 unless CONVAI_SANDBOX is on)."""

from django.urls import path

from . import views

app_name = "sandbox"

urlpatterns = [
    path("character/create", views.create_character, name="create"),
    path("character/update", views.update_character, name="update"),
    path("character/get", views.get_character, name="get"),
    path("user/clone_character", views.clone_character, name="clone"),
    path("character/delete", views.delete_character, name="delete"),
    path("character/list", views.list_characters, name="list"),
    path("tts/get_available_voices", views.list_voices, name="voices"),
    path("tts/get_available_languages", views.list_languages, name="languages"),
    path("user/user-api-usage", views.account_usage, name="usage"),
    path("user/connect", views.connect, name="connect"),
    path("user/extend-token", views.extend_token, name="extend-token"),
    path("user/revoke-token", views.revoke_token, name="revoke-token"),
]
