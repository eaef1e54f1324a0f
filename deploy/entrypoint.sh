#!/usr/bin/env bash
# Convai Admin's one entrypoint, for `make serve`, the container and scripts (benchmarks):
#
#   deploy/entrypoint.sh migrate     collectstatic, migrate, createcachetable, deploy checks
#   deploy/entrypoint.sh web         gunicorn (deploy/gunicorn.conf.py): WEB_WORKERS processes
#   deploy/entrypoint.sh worker      one task worker (manage.py run_worker)
#   deploy/entrypoint.sh scheduler   the periodic scheduler (manage.py run_scheduler)
#   deploy/entrypoint.sh all         migrate, then web + WORKERS workers + the scheduler; stops
#                                    them all (and exits non-zero) when one of them stops
#
# Every setting comes from the environment (docs/production.md). DEBUG is always off here.
# PostgreSQL (DATABASE_URL=postgres://...) is required: SQLite is for `make run`, one machine
# and one person; CONVAI_ADMIN_ALLOW_SQLITE=1 lets a trial run on it anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
WORKERS="${WORKERS:-2}"
export DJANGO_DEBUG=0

say() { echo "entrypoint: $*" >&2; }

require_database() {
  case "${DATABASE_URL:-}" in
    postgres://* | postgresql://* | pgsql://*) ;;
    *)
      if [ "${CONVAI_ADMIN_ALLOW_SQLITE:-0}" != "1" ]; then
        say "DATABASE_URL must name a PostgreSQL database (postgres://user@host:5432/name)."
        say "SQLite is for 'make run'; set CONVAI_ADMIN_ALLOW_SQLITE=1 to try this on it anyway."
        exit 64
      fi
      say "WARNING: running on SQLite (CONVAI_ADMIN_ALLOW_SQLITE=1): one machine, no scaling."
      ;;
  esac
}

migrate() {
  "$PYTHON" manage.py collectstatic --noinput --verbosity 0
  "$PYTHON" manage.py migrate --noinput
  # Creates the cache table when CACHES uses the database cache; does nothing otherwise.
  "$PYTHON" manage.py createcachetable
  # Prints any deployment warning (cookies, HSTS, the sandbox...); fails only on errors.
  "$PYTHON" manage.py check --deploy --database default
}

web() { exec "$PYTHON" -m gunicorn --config deploy/gunicorn.conf.py; }

worker() {
  # Jobs take row locks longer than a page may wait for one (settings: DB_LOCK_TIMEOUT_MS).
  export DB_LOCK_TIMEOUT_MS="${DB_WORKER_LOCK_TIMEOUT_MS:-30000}"
  if [ "${CONVAI_ADMIN_TASK_BACKEND:-database}" = "rq" ]; then
    exec "$PYTHON" manage.py rqworker --job-class django_tasks_rq.Job default
  fi
  exec "$PYTHON" manage.py run_worker --no-reload --no-startup-delay
}

scheduler() { exec "$PYTHON" manage.py run_scheduler; }

all() {
  [ "${SKIP_MIGRATE:-0}" = "1" ] || migrate
  local pids=() n signalled="" status=0
  trap 'signalled=1' TERM INT
  for n in $(seq 1 "$WORKERS"); do
    (worker) &
    pids+=("$!")
  done
  (scheduler) &
  pids+=("$!")
  (web) &
  pids+=("$!")
  say "started web (gunicorn, ${WEB_WORKERS:-2} workers), $WORKERS task worker(s), the scheduler"
  # The first process to stop (or a signal) stops them all: a supervisor (systemd, the
  # container runtime) then sees the service down and restarts it whole.
  wait -n "${pids[@]}" || status=$?
  trap - TERM INT
  say "stopping"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  if [ -n "$signalled" ]; then exit 0; fi
  say "a process stopped by itself (status $status): the service is down"
  exit $((status == 0 ? 1 : status))
}

role="${1:-all}"
require_database
case "$role" in
  migrate) migrate ;;
  web) web ;;
  worker) worker ;;
  scheduler) scheduler ;;
  all) all ;;
  *)
    say "unknown role '$role': use migrate, web, worker, scheduler or all"
    exit 64
    ;;
esac
