"""Write a development .env with fresh secrets, once. Never overwrites an existing file."""

from __future__ import annotations

import base64
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path


def audit_key_line() -> str:
    key_id = "a" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"CONVAI_ADMIN_AUDIT_KEYS={key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def main(path: str) -> None:
    target = Path(path)
    if target.exists():
        # An .env from before the audit key existed: add one (DEBUG-off runs need it).
        text = target.read_text()
        if "CONVAI_ADMIN_AUDIT_KEYS=" not in text:
            with target.open("a") as handle:
                handle.write(("" if text.endswith("\n") else "\n") + audit_key_line() + "\n")
            print(f"Added an audit chain key (CONVAI_ADMIN_AUDIT_KEYS) to {target}.")
        return
    key_id = "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    lines = [
        "# Development settings written by `make run`. Git-ignored; never commit this file.",
        f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}",
        "# DEBUG stays off, as in production; `DJANGO_DEBUG=1 make run` turns it on.",
        f"CONVAI_ADMIN_ENCRYPTION_KEYS={key_id}:{key}",
        audit_key_line(),
        "CONVAI_SANDBOX=1",
        f"CONVAI_ADMIN_DEMO_PASSWORD={secrets.token_urlsafe(12)}",
    ]
    # Created owner-only from the start (no window in which another user could read it).
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    # var/ will hold the database: owner-only as well.
    var = target.resolve().parent / "var"
    var.mkdir(mode=0o700, exist_ok=True)
    var.chmod(0o700)
    print(f"Wrote {target} with a new secret key, encryption keyring and audit key.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".env")
