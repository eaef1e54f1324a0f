from django.urls import include, path

urlpatterns = [
    path("", include("accounts.urls")),
    path("", include("teams.urls")),
    path("", include("keys.urls")),
    path("", include("characters.urls")),
    path("", include("characters.urls_jobs")),
    path("", include("characters.urls_bundles")),
    path("", include("audit.urls")),
    path("sandbox/", include("sandbox.urls")),
]
