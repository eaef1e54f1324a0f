from django.urls import path

from . import apikey_views

urlpatterns = [
    path("account/api-keys/", apikey_views.api_keys, name="api_keys"),
    path(
        "account/api-keys/<uuid:key_id>/verify/",
        apikey_views.api_key_verify,
        name="api_key_verify",
    ),
    path(
        "account/api-keys/<uuid:key_id>/revoke/",
        apikey_views.api_key_revoke,
        name="api_key_revoke",
    ),
]
