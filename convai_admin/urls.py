from django.urls import include, path

from characters import urls as characters_urls

from . import health

urlpatterns = [
    # Unauthenticated probes for load balancers and monitoring (docs/production.md).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("accounts.urls")),
    # django-allauth's pages that accounts.urls does not answer first: password reset,
    # re-authentication, two-factor (2fa/), sign-up (closed).
    path("accounts/", include("allauth.urls")),
    path("", include("teams.urls")),
    path("", include("keys.urls")),
    path("", include("characters.urls")),
    path("", include("jobs.urls")),
    path("", include((characters_urls.bundle_urlpatterns, "bundles"))),
    path("", include("review.urls")),
    path("", include("builds.urls")),
    path("sandbox/", include("sandbox.urls")),
]

# The product's pages, which never read the request's body again (see error_views).
handler400 = "convai_admin.error_views.bad_request"
handler403 = "convai_admin.error_views.permission_denied"
handler404 = "convai_admin.error_views.page_not_found"
handler500 = "convai_admin.error_views.server_error"
