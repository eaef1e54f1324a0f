"""The audit log benchmark (issue 9): a million events in one team.

`python -m tests.bench.audit [--events N] [--postgres [URL]]` (also run by `make bench`).
For each database (SQLite in a temporary directory; PostgreSQL when --postgres is given or
BENCH_POSTGRES is set, in a dedicated database `bench_audit` created and dropped here — no
other database is touched), separate worker processes:

1. seed: migrate, a team with an Owner, `seed_audit_events(events=N)` (bulk, valid chain), ANALYZE;
2. pages: median render of the first page and of a filtered page (actor + action + date
   range), through Django's test Client with DEBUG off, after a warm-up;
3. export: the JSON Lines export of every event, streamed and consumed: rows/s, time to first
   bytes, and the worker's peak RSS (a fresh process, so the figure is the export's);
4. verify: `audit_verify` over the whole table: seconds and peak RSS.

Goals: pages < 50 ms median, export > 50,000 rows/s under 150 MB, verify < 60 s.

The seed takes minutes; to time some steps again against databases seeded earlier,
`--keep DIR` seeds into DIR/audit.sqlite3 (and `bench_audit`) and leaves them, then
`--reuse DIR --steps export` runs just those steps (drop `bench_audit` when done).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.bench.support import run_json_step, worker_environment

ROOT = Path(__file__).resolve().parents[2]
PG_DATABASE = "bench_audit"
DEFAULT_POSTGRES = f"postgres://postgres@127.0.0.1:5432/{PG_DATABASE}"
TEAM = "bench"
ROUNDS = 30


def _stable_key(database_url: str) -> str:
    """A benchmark-only audit key derived from the database URL, so a kept database verifies
    when a later run reuses it."""
    import hashlib

    return base64.b64encode(hashlib.sha256(f"bench:{database_url}".encode()).digest()).decode()


def environment(database_url: str, workdir: Path) -> dict[str, str]:
    return worker_environment(workdir, database_url)


def run_worker(step: str, env: dict[str, str], events: int) -> dict[str, Any]:
    return run_json_step("tests.bench.audit", env, "--worker", step, "--events", str(events))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workers (Django here) ----------------------------------------------------------------------


def stream_export(client: Any, url: str) -> dict[str, Any]:
    """GET an export with the test Client and consume its stream: rows, seconds, rows/s,
    time to the first bytes, and this process's peak RSS (also tests/bench/scale.py)."""
    started = time.perf_counter()
    response = client.get(url)
    first = None
    lines = 0
    for chunk in response.streaming_content:
        if first is None:
            first = time.perf_counter() - started
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    return {
        "rows": lines,
        "export_s": elapsed,
        "rows_per_s": lines / elapsed,
        "first_bytes_ms": (first or 0) * 1000,
        "rss_mb": peak_rss_mb(),
    }


def worker(step: str, events: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from teams.models import Membership, Role, Team

    if step == "seed":
        call_command("migrate", verbosity=0, interactive=False)
        from accounts.models import User

        from .seed_audit import seed_audit_events

        team = Team.objects.create(name="Bench", slug=TEAM)
        owner = User.objects.create(username="bench-owner", first_name="Bench")
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        started = time.perf_counter()
        seed_audit_events(team=TEAM, events=events)
        seeded = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        return {"seed_s": seeded}

    team = Team.objects.get(slug=TEAM)
    client = Client()
    client.force_login(Membership.objects.get(team=team, role=Role.OWNER).user)

    if step == "pages":
        from accounts.models import User

        actor = User.objects.get(username="auditor3")
        log = reverse("audit:log", args=[TEAM])
        from datetime import timedelta

        from django.utils import timezone

        today = timezone.now().date()
        # A quarter, from half a year ago: the page has to skip the newer events.
        since, until = today - timedelta(days=270), today - timedelta(days=180)
        filtered = (
            f"{log}?actor={actor.pk}&action=character.delete"
            f"&since={since.isoformat()}&until={until.isoformat()}"
        )
        urls = {"first page": log, "filtered (actor+action+dates)": filtered}
        timings: dict[str, list[float]] = {name: [] for name in urls}
        for url in urls.values():
            for _ in range(5):  # warm-up
                assert client.get(url).status_code == 200
        for _ in range(ROUNDS):
            for name, url in urls.items():
                started = time.perf_counter()
                response = client.get(url)
                timings[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
        rows = client.get(filtered).content.count(b'class="audit-more"')
        return {
            "pages": {name: statistics.median(values) for name, values in timings.items()},
            "filtered_rows": rows,
        }

    if step == "export":
        return stream_export(client, reverse("audit:export-jsonl", args=[TEAM]))

    if step == "verify":
        import io

        started = time.perf_counter()
        call_command("audit_verify", stdout=io.StringIO(), stderr=io.StringIO())
        return {"verify_s": time.perf_counter() - started, "rss_mb": peak_rss_mb()}
    raise SystemExit(f"unknown step {step}")


# --- the orchestrator -----------------------------------------------------------------------


def _pg(url: str, sql: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


STEPS = ("seed", "pages", "export", "verify")


def bench(name: str, database_url: str, events: int, steps: tuple[str, ...]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="convai-audit-bench-"))
    env = environment(database_url, workdir)
    # The same audit key across runs against a kept database (its events are sealed with it).
    env["CONVAI_ADMIN_AUDIT_KEYS"] = f"bench:{_stable_key(database_url)}"
    results: dict[str, Any] = {"db": name}
    try:
        for step in steps:
            print(f"  {name}: {step}...", file=sys.stderr, flush=True)
            results[step] = run_worker(step, env, events)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(all_results: list[dict[str, Any]], events: int) -> None:
    print(f"## Audit log at {events:,} events\n")
    print(f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}")
    print(f"- Python {platform.python_version()} on {platform.system()} {platform.release()}")
    print("- Command: `python -m tests.bench.audit --postgres`\n")
    print(
        "| database | seed (s) | first page p50 (ms) | filtered page p50 (ms) | export rows/s "
        "| export first bytes (ms) | export peak RSS (MB) | audit_verify (s) | verify RSS (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in all_results:
        if not {"seed", "pages", "verify"} <= r.keys():
            print(json.dumps(r))
            continue
        pages = r["pages"]["pages"]
        print(
            f"| {r['db']} | {r['seed']['seed_s']:.0f} | {pages['first page']:.1f} "
            f"| {pages['filtered (actor+action+dates)']:.1f} | {r['export']['rows_per_s']:,.0f} "
            f"| {r['export']['first_bytes_ms']:.0f} | {r['export']['rss_mb']:.0f} "
            f"| {r['verify']['verify_s']:.1f} | {r['verify']['rss_mb']:.0f} |"
        )
    print(f"\nLoad average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.audit", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", nargs="?", const=DEFAULT_POSTGRES, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--keep", metavar="DIR", help="seed into DIR and keep the databases")
    parser.add_argument("--reuse", metavar="DIR", help="use the databases kept by --keep DIR")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help="comma-separated, of " + str(STEPS)
    )
    parser.add_argument("--sqlite-only", action="store_true")
    args, _ = parser.parse_known_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.events)))
        return 0
    steps = tuple(s for s in STEPS if s in args.steps.split(","))
    kept = args.keep or args.reuse
    if args.reuse:
        steps = tuple(s for s in steps if s != "seed")
    postgres = None if args.sqlite_only else args.postgres or os.environ.get("BENCH_POSTGRES")
    results = []
    if kept:
        tmp = Path(kept)
        tmp.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        url = f"sqlite:///{tmp / 'audit.sqlite3'}"
        if "seed" in steps:
            (tmp / "audit.sqlite3").unlink(missing_ok=True)
        results.append(bench("SQLite", url, args.events, steps))
    finally:
        if not kept:
            shutil.rmtree(tmp, ignore_errors=True)
    if postgres:
        parts = urlsplit(postgres)
        url = urlunsplit(parts._replace(path=f"/{PG_DATABASE}"))
        if "seed" in steps:
            _pg(url, f"DROP DATABASE IF EXISTS {PG_DATABASE}")
            _pg(url, f"CREATE DATABASE {PG_DATABASE}")
        try:
            results.append(bench("PostgreSQL", url, args.events, steps))
        finally:
            if not kept:
                _pg(url, f"DROP DATABASE IF EXISTS {PG_DATABASE}")
    report(results, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
