"""A create, clone or delete whose web process is killed (SIGKILL) while Convai answers
(issue 17 §2): the intent was committed before the call, so the dashboard shows it, the same
form sent again never reaches Convai twice, and reconciliation adopts what Convai made (or
finishes the delete).

The killed process is real (tests/characters/killed_driver.py in a subprocess) and talks to
the live sandbox over HTTP; the sandbox adds its latency after doing the work, so the kill
lands between Convai acting and the dashboard hearing of it. The dashboard's database is the
test database on PostgreSQL; on SQLite (whose test database lives in this process's memory)
a migrated database file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from sandbox.models import SandboxCharacter, SandboxKey
from sandbox.services import clear_faults, create_sandbox_key, hash_key, set_fault

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 30.0  # seconds: a bound on every wait, never a delay
LATENCY_MS = 4000


@pytest.fixture
def world(sandbox: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of the dashboard's processes: the sandbox, and a database they can
    reach (the test database on PostgreSQL, a migrated file on SQLite)."""
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        login = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        url = f"postgres://{login}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        url = f"sqlite:///{tmp_path / 'dashboard.sqlite3'}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_CONN_MAX_AGE": "0",
        "CONVAI_API_BASE_URL": sandbox,
        "CONVAI_RETRY_BACKOFF": "0",
        "CONVAI_READ_TIMEOUT": "20",
        # Reconciliation in the `after` step: every pending operation is due and overdue.
        "CHARACTER_RECONCILE_AFTER": "0",
        "CONVAI_REQUEST_SECONDS": "0",
    }
    if connection.vendor != "postgresql":
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr
    yield env
    clear_faults(everything=True)


def driver(command: str, kind: str, args: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "tests.characters.killed_driver", command, kind, json.dumps(args)]


def poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling for a state, with a bounded deadline


def remote_count(raw_key: str, **filters: Any) -> int:
    account = SandboxKey.objects.get(key_hash=hash_key(raw_key)).account_id
    return SandboxCharacter.objects.filter(owner_id=account, **filters).count()


def kill_during(kind: str, env: dict[str, str], done: Callable[[str], bool]) -> dict[str, Any]:
    """Start the dashboard process, let it make what it needs, make Convai slow, let it run
    the operation, and SIGKILL it as soon as Convai has acted (while it waits for the answer).
    Returns what it made, with the sandbox key."""
    raw_key = create_sandbox_key("killed")
    token = "form-token-1"
    process = subprocess.Popen(
        driver("start", kind, {"raw_key": raw_key, "token": token}),
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "no output"
        made = json.loads(line)
        set_fault(latency_ms=LATENCY_MS)
        serving = set(threading.enumerate())
        process.stdin.write("go\n")
        process.stdin.flush()
        poll(lambda: done(raw_key), f"Convai to {kind}")
        assert process.poll() is None, "the request finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(DEADLINE) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(DEADLINE)
    clear_faults(everything=True)
    # The live server's thread still sleeping out the latency of the killed request is let
    # finish before the test ends (it must not outlive the test database).
    made["_threads"] = set(threading.enumerate()) - serving
    return {**made, "raw_key": raw_key, "token": token}


def after(kind: str, made: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    threads = made.pop("_threads")
    result = subprocess.run(
        driver("after", kind, made),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for thread in threads:
        thread.join(DEADLINE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def ops(state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The operations of one kind (a clone's or delete's setup created its source first)."""
    return [o for o in state["operations"] if o["kind"] == kind]


def test_a_create_whose_server_dies_is_adopted_and_never_made_twice(
    world: dict[str, str],
) -> None:
    made = kill_during("create", world, lambda key: remote_count(key) == 1)
    seen = after("create", made, world)

    # Right after the kill: no character, but the intent, pending.
    before = seen["before"]
    assert before["characters"] == []
    assert [(o["kind"], o["state"], o["name"]) for o in before["operations"]] == [
        ("create", "pending", "Killed Kim")
    ]
    # The same form sent again does not reach Convai.
    assert seen["resent_before"] == "OperationPending"
    assert remote_count(made["raw_key"]) == 1

    # Reconciliation adopts it: a record, its first revision and a recovered event.
    assert "1 adopted" in seen["summary"]
    (character,) = seen["after"]["characters"]
    convai_id = SandboxCharacter.objects.get(character_name="Killed Kim").character_id
    assert character["convai_id"] == convai_id
    assert character["created_by_id"] == made["user"]
    (operation,) = seen["after"]["operations"]
    assert (operation["state"], operation["result_id"]) == ("done", character["pk"])
    (revision,) = seen["after"]["revisions"]
    assert revision["reason"] == "created" and "recovered" in revision["note"]
    (event,) = [e for e in seen["after"]["events"] if e["action"] == "character.create"]
    assert event["outcome"] == "success" and event["recovered"]
    assert event["actor"] == "system (reconciliation)"

    # Sent once more: done already, still one character on Convai.
    assert seen["resent_after"] == "OperationDone"
    assert remote_count(made["raw_key"]) == 1


def test_a_clone_whose_server_dies_is_adopted_and_never_made_twice(
    world: dict[str, str],
) -> None:
    made = kill_during("clone", world, lambda key: remote_count(key) == 2)
    seen = after("clone", made, world)

    assert [c["convai_id"] for c in seen["before"]["characters"]] == [made["convai_id"]]
    assert [o["state"] for o in ops(seen["before"], "clone")] == ["pending"]
    assert seen["resent_before"] == "OperationPending"
    assert remote_count(made["raw_key"]) == 2

    assert "1 adopted" in seen["summary"]
    source, copy = seen["after"]["characters"]
    assert source["convai_id"] == made["convai_id"]
    assert copy["convai_id"] not in (made["convai_id"], "")
    # Killed before the rename: the copy still has its source's name on Convai.
    assert copy["name"] == "Killed Kim"
    (operation,) = ops(seen["after"], "clone")
    assert (operation["state"], operation["result_id"]) == ("done", copy["pk"])
    copy_revisions = [r for r in seen["after"]["revisions"] if r["character_id"] == copy["pk"]]
    assert [(r["reason"], "recovered" in r["note"]) for r in copy_revisions] == [("cloned", True)]
    assert seen["resent_after"] == "OperationDone"
    assert remote_count(made["raw_key"]) == 2


def test_a_delete_whose_server_dies_is_finished_and_never_sent_twice(
    world: dict[str, str],
) -> None:
    made = kill_during("delete", world, lambda key: remote_count(key) == 0)
    seen = after("delete", made, world)

    (character,) = seen["before"]["characters"]
    assert character["deleted_at"] is None  # the record still looks live
    assert [o["state"] for o in ops(seen["before"], "delete")] == ["pending"]
    assert seen["resent_before"] == "OperationPending"

    assert "1 deleted" in seen["summary"]
    (character,) = seen["after"]["characters"]
    assert character["deleted_at"] is not None
    (operation,) = ops(seen["after"], "delete")
    assert operation["state"] == "done"
    last = seen["after"]["revisions"][-1]
    assert last["reason"] == "deleted" and "interrupted delete" in last["note"]
    (event,) = [e for e in seen["after"]["events"] if e["action"] == "character.delete"]
    assert event["recovered"] and event["actor"] == "system (reconciliation)"
    assert seen["resent_after"] == "CharacterDeleted"
