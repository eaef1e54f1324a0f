from django.urls import path

from . import views

app_name = "keys"

urlpatterns = [
    path("account/api-keys/", views.api_keys, name="list"),
    path("account/api-keys/<uuid:key_id>/verify/", views.api_key_verify, name="verify"),
    path(
        "account/api-keys/<uuid:key_id>/usage/",
        views.api_key_refresh_usage,
        name="refresh-usage",
    ),
    path("account/api-keys/<uuid:key_id>/revoke/", views.api_key_revoke, name="revoke"),
]
