# Convai Admin — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PORT   ?= 8000
HOST   ?= 127.0.0.1

.PHONY: run serve test lint typecheck pytest bench venv clean-venv

$(BIN)/activate:
	$(PYTHON) -c 'import sys; sys.exit("Convai Admin needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate requirements.txt requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

.env: | $(VENV)/.installed
	$(PY) scripts/init_env.py .env

# Serves the product as people will meet it: DEBUG off (the product's own 403/404/500 pages),
# static files collected into var/static and served by WhiteNoise. `DJANGO_DEBUG=1 make run`
# gives Django's debug pages; the command line wins over an older .env that set DJANGO_DEBUG.
# DJANGO_SECURE=0: runserver speaks plain http on $(HOST), so no HTTPS-only cookies or redirect.
# The background workers (import all, sync all, bundle imports, periodic work: WORKERS of them,
# 2 by default, so one team's long job never holds another team's short one) and the scheduler
# (manage.py run_scheduler: queues the periodic functions when due) run beside the web server
# and stop with it.
WORKERS ?= 2
run: venv .env
	@$(PY) scripts/init_env.py .env
	@debug="$${DJANGO_DEBUG:-0}" && umask 077 && \
	set -a && . ./.env && set +a && \
	export DJANGO_DEBUG="$$debug" DJANGO_SECURE=0 && \
	export CONVAI_SANDBOX=1 CONVAI_API_BASE_URL="http://$(HOST):$(PORT)/sandbox" && \
	export EMAIL_URL="$${EMAIL_URL:-console://}" && \
	$(PY) scripts/check_database.py && \
	$(PY) manage.py migrate --noinput && \
	$(PY) manage.py collectstatic --noinput --verbosity 0 && \
	$(PY) manage.py bootstrap_demo --url "http://$(HOST):$(PORT)/" && \
	{ pids=""; \
	  for n in $$(seq 1 $(WORKERS)); do \
	    DB_LOCK_TIMEOUT_MS="$${DB_WORKER_LOCK_TIMEOUT_MS:-30000}" \
	      $(PY) manage.py run_worker --no-reload --no-startup-delay & \
	    pids="$$pids $$!"; \
	  done; \
	  $(PY) manage.py run_scheduler & pids="$$pids $$!"; \
	  trap 'kill $$pids 2>/dev/null; wait $$pids 2>/dev/null' EXIT INT TERM; \
	  $(PY) manage.py runserver "$(HOST):$(PORT)"; }

# Production (README "Production", docs/production.md): every setting from the environment
# (or from ENV_FILE=path, a file of VAR=value lines), PostgreSQL from DATABASE_URL, DEBUG off,
# no sandbox. collectstatic, migrate, then gunicorn with WEB_WORKERS processes, WORKERS task
# workers and the scheduler, all stopped together (deploy/entrypoint.sh, as in the container).
ENV_FILE ?=
serve: venv
	@if [ -n "$(ENV_FILE)" ]; then set -a && . "$(ENV_FILE)" && set +a; fi && \
	PYTHON="$(CURDIR)/$(PY)" WORKERS="$(WORKERS)" exec deploy/entrypoint.sh all

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	DJANGO_DEBUG=1 $(BIN)/mypy .

pytest: venv
	@if [ ! -x "$${CHROMIUM:-/usr/bin/chromium}" ]; then \
	  echo "NOTE: Chromium not found at $${CHROMIUM:-/usr/bin/chromium}: browser tests (tests/e2e) will be SKIPPED."; \
	  echo "      Install it to run them: sudo apt-get install -y chromium  (or set CHROMIUM=/path/to/chromium)"; \
	fi
	$(BIN)/pytest

test: lint typecheck pytest

bench: venv
	$(BIN)/python -m tests.bench.run

clean-venv:
	rm -rf $(VENV)
