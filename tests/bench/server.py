"""The sandbox server the benchmark talks to: Django's threaded WSGI server (as `runserver`
uses) with TCP_NODELAY, as any production server sets it. Without it every small response
waits ~40 ms for a delayed ACK and the benchmark would measure Nagle's algorithm, not the
client. Run as `python -m tests.bench.server PORT [URLCONF]` with the environment prepared by
run.py; URLCONF replaces the product's URLs (the token benchmark's no-op proxy)."""

from __future__ import annotations

import os
import sys
from typing import Any


def main(port: int, urlconf: str = "") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "convai_admin.settings")
    import django
    from django.conf import settings

    django.setup()
    if urlconf:
        settings.ROOT_URLCONF = urlconf
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietNoDelayHandler(WSGIRequestHandler):
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", port), QuietNoDelayHandler)
    server.set_app(get_wsgi_application())
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:3])
