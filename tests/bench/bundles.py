"""The bundle benchmarks: export 10,000 characters, streamed (issue 8), and the memory of
validating the worst 20 MB uploads (issue 12).

`python -m tests.bench.bundles [--characters N]` (also run by `make bench`). In a temporary
SQLite database, separate worker processes:

1. seed: migrate, `seed_characters(team=..., characters=N)` (bulk, no Convai call);
2. export: the whole team as one bundle through the real view (Django's test Client, DEBUG
   off), the streamed body consumed and hashed, not kept: seconds, characters/s, bytes, time to
   the first bytes, the worker's peak RSS, and tracemalloc's peak of Python allocations during
   the export (what grows with the number of characters if it did not stream);
3. the same export of N/10 characters, to show the peak does not grow with N.

Goal: peak Python allocations independent of N (it streams). tracemalloc slows the export
itself (about 2x); the time is an upper bound.

Upload validation (`--uploads`, also run by `make bench`): each of the worst files of just
under the 20 MB limit (6.6 million empty objects; ten million values in one snapshot; objects
of 1,000 keys; the largest valid bundle of 10,000 characters in 2- and 4-byte UTF-8; one 20 MB
string; empty objects read by the pure-Python parser) is written to a temporary file and
validated by `characters.bundles.reading.validate_file` in a fresh child process, which reports its
peak RSS (`resource.getrusage`, whole process: Python, Django and the validation) and its RSS
before validating. Goal: peak RSS <= 150 MB for every file.
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
        from .seed_characters import seed_characters

        slug = f"{TEAM}-{characters}"
        call_command("migrate", verbosity=0, interactive=False)
        started = time.perf_counter()
        seed_characters(team=slug, characters=characters, revisions=1)
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


LIMIT = 20 * 1024 * 1024
GOAL_MB = 150
UPLOADS = (
    "empty-objects",
    "empty-objects-python-parser",
    "snapshot-values",
    "objects-of-1000-keys",
    "valid-10000-cyrillic",
    "valid-10000-emoji",
    "one-20mb-string",
    "one-20mb-string-with-escaped-quotes",
)


def _character(number: int, backstory: str, snapshot: str = "{}") -> str:
    fields = {
        "actions": ["Wave"],
        "backstory": backstory,
        "convai_id": f"bench-{number}",
        "language_codes": ["en-US"],
        "name": f"Character {number}",
        "voice_type": "MALE",
    }
    text = json.dumps(fields, ensure_ascii=False)
    return text[:-1] + f', "snapshot": {snapshot}}}'


def write_upload(kind: str, path: Path) -> None:
    """The worst file of `kind`, just under the 20 MB limit, written piece by piece."""
    budget = LIMIT - 4096
    team = '"bench \\ud83c\\udfae"' if kind.endswith("python-parser") else '"bench"'
    head = '{"characters": ['
    tail = f'], "schema": "convai-admin/bundle@1", "team": {team}}}'
    with open(path, "w", encoding="utf-8") as out:
        out.write(head)
        if kind.startswith("empty-objects"):
            count = (budget - len(head) - len(tail)) // 3
            piece = "{}," * 100_000
            for _ in range(count // 100_000):
                out.write(piece)
            out.write("{}," * (count % 100_000) + "{}")
        elif kind == "snapshot-values":
            before, after = _character(1, "x", "@").split("@")
            out.write(before + '{"v": [')
            count = (budget - len(head) - len(before) - len(after) - len(tail) - 20) // 2
            for _ in range(count // 100_000):
                out.write("0," * 100_000)
            out.write("0," * (count % 100_000) + "0]}" + after)
        elif kind == "objects-of-1000-keys":
            keys = "{" + ", ".join(f'"k{n}": 0' for n in range(1000)) + "}"
            number = 0
            while out.tell() + len(keys) + 200 < budget - len(tail):
                number += 1
                out.write(("" if number == 1 else ",") + _character(number, "x", keys))
        elif kind.startswith("valid-10000"):
            letter = "ж" if kind.endswith("cyrillic") else "🎮"
            size = len(letter.encode())
            per = (budget - len(head) - len(tail)) // 10_000 - 250
            story = letter * min(10_000, per // size)
            out.write(",".join(_character(n, story) for n in range(1, 10_001)))
        elif kind == "one-20mb-string":
            out.write(_character(1, "🎮" * ((budget - 300) // 4)))
        elif kind == "one-20mb-string-with-escaped-quotes":
            piece = "🎮" * 15_000 + '"'  # an escaped quote every 60 KB hides the length
            out.write(_character(1, piece * ((budget - 300) // 60_002)))
        else:
            raise SystemExit(f"unknown upload kind {kind}")
        out.write(tail)


def upload_worker(kind: str, path: str) -> dict[str, Any]:
    """Validate one file in this fresh process: peak RSS, and RSS before validating."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from characters.bundles.reading import validate_file
    from characters.bundles.schema import BundleInvalid

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    try:
        with open(path, "rb") as stream:
            bundle = validate_file(stream)
        outcome = f"valid ({len(bundle.characters):,} characters)"
    except BundleInvalid as refusal:
        outcome = f"refused: {refusal.reason}"
    return {
        "kind": kind,
        "bytes": os.path.getsize(path),
        "outcome": outcome,
        "seconds": time.perf_counter() - started,
        "rss_before_mb": before,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def uploads_report() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    results = []
    try:
        env = environment(workdir)
        for kind in UPLOADS:
            path = workdir / f"{kind}.json"
            # Written by another child: a process's peak RSS survives exec, so the parent
            # stays small and the validating child's figure is its own.
            run_json_step(
                "tests.bench.bundles", env, "--worker", "write", "--kind", kind, "--path",
                str(path),
            )  # fmt: skip
            results.append(
                run_json_step(
                    "tests.bench.bundles", env, "--worker", "upload", "--kind", kind, "--path",
                    str(path),
                )
            )  # fmt: skip
            path.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("## Bundle upload validation, worst 20 MB files (issue 12)\n")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("Command: `python -m tests.bench.bundles --uploads` (each file in a fresh process)\n")
    print("| File | Size | Outcome | Time | RSS before | Peak RSS |")
    print("|---|---:|---|---:|---:|---:|")
    worst = 0.0
    for run in results:
        worst = max(worst, run["rss_mb"])
        print(
            f"| {run['kind']} | {run['bytes'] / 1024 / 1024:.1f} MB | {run['outcome']} "
            f"| {run['seconds']:.2f} s | {run['rss_before_mb']:.0f} MB | {run['rss_mb']:.0f} MB |"
        )
    verdict = "met" if worst <= GOAL_MB else "MISSED"
    print(f"\nWorst peak RSS {worst:.0f} MB; goal <= {GOAL_MB} MB: {verdict}.")
    return 0 if worst <= GOAL_MB else 1


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
    parser.add_argument("--uploads", action="store_true", help="only the upload benchmark")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args, _rest = parser.parse_known_args(argv)
    if args.worker == "write":
        write_upload(args.kind, Path(args.path))
        print(json.dumps({"written": args.path}))
        return 0
    if args.worker == "upload":
        print(json.dumps(upload_worker(args.kind, args.path)))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.characters)))
        return 0
    if args.uploads:
        return uploads_report()
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
    print(f"\nTwo exports of the same {big['count']:,} characters: {same} bytes.\n")
    status = uploads_report()
    return status | (0 if same == "identical" else 1)


if __name__ == "__main__":
    raise SystemExit(main())
