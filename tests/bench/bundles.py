"""The bundle export benchmark (issue 8): export 10,000 characters, streamed.

`python -m tests.bench.bundles [--characters N]` (also run by `make bench`). In a temporary
SQLite database, separate worker processes:

1. seed: migrate, `seed_characters --team bench --characters N` (bulk, no Convai call);
2. export: the whole team as one bundle through the real view (Django's test Client, DEBUG
   off), the streamed body consumed and hashed, not kept: seconds, characters/s, bytes, time to
   the first bytes, the worker's peak RSS, and tracemalloc's peak of Python allocations during
   the export (what grows with the number of characters if it did not stream);
3. the same export of N/10 characters, to show the peak does not grow with N.

Goal: peak Python allocations independent of N (it streams). tracemalloc slows the export
itself (about 2x); the time is an upper bound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.support import run_json_step, worker_environment

ROOT = Path(__file__).resolve().parents[2]
TEAM = "bench"


def environment(workdir: Path) -> dict[str, str]:
    return worker_environment(workdir, f"sqlite:///{workdir / 'bench.sqlite3'}")


def run_worker(step: str, env: dict[str, str], characters: int) -> dict[str, Any]:
    return run_json_step("tests.bench.bundles", env, "--worker", step, "-n", str(characters))


def worker(step: str, characters: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    if step.startswith("seed"):
        slug = f"{TEAM}-{characters}"
        call_command("migrate", verbosity=0, interactive=False)
        started = time.perf_counter()
        call_command(
            "seed_characters",
            team=slug,
            characters=characters,
            revisions=1,
            i_know=True,
            verbosity=0,
        )
        return {"seeded_s": time.perf_counter() - started}

    import tracemalloc

    from django.test import Client
    from django.urls import reverse

    from teams.models import Membership

    slug = f"{TEAM}-{characters}"
    owner = Membership.objects.select_related("user").get(team__slug=slug).user
    client = Client()
    client.force_login(owner)
    url = reverse("bundles:export", args=[slug])
    tracemalloc.start()
    started = time.perf_counter()
    response = client.get(url)
    digest = hashlib.sha256()
    size = 0
    first = None
    for chunk in response.streaming_content:  # type: ignore[attr-defined]
        if first is None:
            first = time.perf_counter() - started
        digest.update(chunk)
        size += len(chunk)
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "status": response.status_code,
        "count": int(response["X-Bundle-Count"]),
        "seconds": elapsed,
        "first_bytes_ms": (first or 0) * 1000,
        "bytes": size,
        "sha256": digest.hexdigest(),
        "traced_peak_mb": peak / 1024 / 1024,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bundles")
    parser.add_argument("--characters", "-n", type=int, default=10_000)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args, _rest = parser.parse_known_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.characters)))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-bundles-"))
    try:
        env = environment(workdir)
        small = max(1, args.characters // 10)
        run_worker("seed", env, args.characters)
        run_worker("seed-small", env, small)
        big = run_worker("export", env, args.characters)
        again = run_worker("export", env, args.characters)
        little = run_worker("export", env, small)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("## Bundle export (issue 8)\n")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"Command: `python -m tests.bench.bundles --characters {args.characters}` (SQLite)\n")
    print("| Characters | Time | Characters/s | First bytes | Size | Peak Python allocations "
          "| Peak RSS |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for run in (big, little):
        print(
            f"| {run['count']:,} | {run['seconds']:.2f} s | {run['count'] / run['seconds']:,.0f} "
            f"| {run['first_bytes_ms']:.0f} ms | {run['bytes'] / 1024 / 1024:.1f} MB "
            f"| {run['traced_peak_mb']:.1f} MB | {run['rss_mb']:.0f} MB |"
        )
    same = "identical" if big["sha256"] == again["sha256"] else "DIFFERENT"
    print(f"\nTwo exports of the same {big['count']:,} characters: {same} bytes.")
    return 0 if same == "identical" else 1


if __name__ == "__main__":
    raise SystemExit(main())
