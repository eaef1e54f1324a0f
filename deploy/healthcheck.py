"""The container's health probe: GET /healthz on this machine, exit 0 when it answers 200.

Standard library only and no Django (it runs every 30 s; importing the app would cost more
than the check). The Host header is the first of DJANGO_ALLOWED_HOSTS, so the app does not
refuse the probe as a request for a host it does not serve.
"""

from __future__ import annotations

import http.client
import os
import sys


def probe_host() -> str:
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
    host = hosts[0] if hosts else "localhost"
    return "localhost" if host == "*" else host.lstrip(".")


def main() -> int:
    bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
    port = int(bind.rsplit(":", 1)[-1])
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": probe_host()})
        status = connection.getresponse().status
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"unhealthy: {path} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
