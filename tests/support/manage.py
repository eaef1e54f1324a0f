"""`manage.py` in a child process with production-like settings, for tests of what the
settings module does at start-up (tests/test_settings.py, tests/accounts/)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROD_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "p" * 20 + "-Zq8#kL2$wR7!mN4^tY6&uI1*oP3(aS5)dF9_gH0",
    "CONVAI_ADMIN_ENCRYPTION_KEYS": "prod1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "CONVAI_ADMIN_AUDIT_KEYS": "audit1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
    "DJANGO_ALLOWED_HOSTS": "admin.example.com",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Without DATABASE_URL too: these tests are about the default SQLite file (CI's PostgreSQL
    # pass sets DATABASE_URL for the suite). In an empty var/ of its own unless the test names
    # one: never the checkout's var/, whose database (a `make run`'s keys, a previous pass's
    # leftovers) would make the outcome depend on what ran before.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CONVAI_", "DATABASE_URL"))
    }
    with tempfile.TemporaryDirectory(prefix="convai-admin-var-") as var:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**base, "CONVAI_ADMIN_VAR_DIR": var, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
