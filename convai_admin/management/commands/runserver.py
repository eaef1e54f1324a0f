"""`runserver`, serving with convai_admin.server.BoundedWSGIServer (read timeouts).

whitenoise.runserver_nostatic (listed first in INSTALLED_APPS) wraps the next runserver it
finds among the apps after it: this one (convai_admin comes before staticfiles), which wraps
staticfiles' and so Django's. The chain keeps every option they add."""

from __future__ import annotations

from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver

from convai_admin.server import BoundedWSGIServer


class Command(StaticRunserver):
    server_cls = BoundedWSGIServer
