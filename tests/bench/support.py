"""What every benchmark worker process needs: a production-like environment (DEBUG off,
throwaway secrets, no network but loopback) and a way to run one step in a child process and
read its JSON result."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def throwaway_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def worker_environment(workdir: Path, database_url: str, **overrides: str) -> dict[str, str]:
    """This process's environment without its DJANGO_/CONVAI_ settings, plus the benchmark's:
    DEBUG off as in production, fresh secrets and keyrings, plain HTTP for the test Client,
    Convai pointed at a closed loopback port (a stray call fails fast), and `overrides`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CONVAI_"))}
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "convai_admin.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "CONVAI_ADMIN_ENCRYPTION_KEYS": f"bench:{throwaway_key()}",
        "CONVAI_ADMIN_AUDIT_KEYS": f"bench:{throwaway_key()}",
        "CONVAI_ADMIN_PLAIN_STATIC": "1",  # no collectstatic manifest in a temp dir
        "CONVAI_SANDBOX": "0",
        "CONVAI_API_BASE_URL": "http://127.0.0.1:9",
        "CONVAI_ADMIN_VAR_DIR": str(workdir),
        "DATABASE_URL": database_url,
        "DJANGO_LOG_LEVEL": "WARNING",
        "CONVAI_LOG_LEVEL": "WARNING",
        **overrides,
    }


def run_json_step(module: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """`python -m module *args` in a child process; its last stdout line is the JSON result."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))
