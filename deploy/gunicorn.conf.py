"""gunicorn's configuration for Convai Admin (`deploy/entrypoint.sh web`, `make serve`, the
container). Every value comes from the environment; docs/production.md has the table.

Sync workers with threads (gthread): the app is I/O-bound (PostgreSQL, Convai over HTTPS), so
a few processes each with a few threads serve a studio's traffic; a worker is recycled after
WEB_MAX_REQUESTS requests (with jitter) so slow leaks cannot grow for ever.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


wsgi_app = "convai_admin.wsgi:application"
bind = [os.environ.get("WEB_BIND", "127.0.0.1:8000")]
workers = _int("WEB_WORKERS", 2)
worker_class = "gthread"
threads = _int("WEB_THREADS", 4)
# A request may wait on Convai for up to CONVAI_REQUEST_SECONDS (a write, then a read-back with
# retries: 100 s with the default timeouts): the worker timeout must be longer, or gunicorn
# kills a worker in the middle of a save whose outcome then needs reconciling.
timeout = _int("WEB_TIMEOUT", 130)
graceful_timeout = _int("WEB_GRACEFUL_TIMEOUT", 30)
keepalive = _int("WEB_KEEPALIVE", 5)
max_requests = _int("WEB_MAX_REQUESTS", 1000)
max_requests_jitter = _int("WEB_MAX_REQUESTS_JITTER", 100)
# Requests larger than the app accepts are the app's to refuse (413 with a page), except
# absurd request lines and headers, which gunicorn's defaults already bound.

# The worker heartbeat files: memory, not a container's overlay disk (where a slow fsync can
# make the arbiter think a worker froze). gunicorn creates them with mkstemp, owner-only.
SHARED_MEMORY = "/dev/shm"  # noqa: S108
if os.path.isdir(SHARED_MEMORY):
    worker_tmp_dir = SHARED_MEMORY

# X-Forwarded-Proto/-For are believed only from these addresses: the same list as the app's
# (CONVAI_ADMIN_TRUSTED_PROXIES, convai_admin/net.py). Empty: from nobody.
forwarded_allow_ips = os.environ.get("CONVAI_ADMIN_TRUSTED_PROXIES", "").strip()

# Access log on stdout, WITHOUT the query string (%(U)s is the path only) and without the
# Referer (a full URL): an invitation token or a filter in a URL never reaches the logs.
# Remote address, time, method, path, status, bytes, milliseconds, user agent, request ID.
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "1") != "0" else None
access_log_format = (
    '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s" %({x-request-id}o)s'
)
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")

# No control socket ($HOME/.gunicorn/gunicorn.ctl by default since gunicorn 25): two servers
# on one machine would fight over it, and nothing here uses gunicornc.
control_socket_disable = True
proc_name = "convai-admin-web"
