"""The benchmark's URLconf: the product's URLs plus the benchmark-only admin site. Set with
override_settings(ROOT_URLCONF="tests.bench.urls") inside the benchmark process only."""

from __future__ import annotations

from django.urls import path

from convai_admin.urls import urlpatterns as product_urlpatterns

from .admin_site import site

urlpatterns = [*product_urlpatterns, path("bench-admin/", site.urls)]
