"""`make bench`: the Convai client against the sandbox over real HTTP on this machine, then
the characters benchmark (tests/bench/characters.py: the product's character pages against
Django's admin changelist over 10,000 characters, on SQLite, and on PostgreSQL with
`--postgres [URL]` or BENCH_POSTGRES).

`python -m tests.bench.run [--only client|characters|scale] [--scale] [characters options]`.
`--scale` (or BENCH_SCALE=1: `make bench BENCH_SCALE=1`) adds tests/bench/scale.py at the end:
PostgreSQL seeded to a studio's scale, its pages timed, the production server under load.

1. 1,000 `get_character` calls with the pooled keep-alive client and 1,000 with a new
   connection per call (in interleaved rounds), and the ratio of the two.
2. 200 sequential `create_character` calls: calls per second.

Self-contained: a temporary SQLite database (migrated here), the sandbox served by a
subprocess on a free port of 127.0.0.1, a fresh sandbox key. Prints a Markdown report (the
figures in docs/benchmarks.md come from it).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GETS = 1000
CREATES = 200
WARMUP = 50
ROUNDS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"The sandbox server exited early (code {server.returncode}).")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("The sandbox server did not start in time.")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(count: int, call: Callable[[], object]) -> list[float]:
    """Per-call durations in milliseconds."""
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def summary(durations: list[float]) -> tuple[float, float, float, float, float]:
    """(total s, calls/s, mean ms, p50 ms, p95 ms)."""
    total = sum(durations) / 1000
    ordered = sorted(durations)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return (
        total,
        len(durations) / total,
        statistics.fmean(durations),
        ordered[len(ordered) // 2],
        p95,
    )


def prepare_environment(workdir: Path) -> None:
    """Everything the settings read, pointed at throwaway locations."""
    shm = Path("/dev/shm")
    db_dir = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else workdir
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "convai_admin.settings",
            "DJANGO_DEBUG": "1",
            "CONVAI_SANDBOX": "1",
            "CONVAI_ADMIN_VAR_DIR": str(workdir),
            "DATABASE_URL": f"sqlite:///{db_dir / 'bench.sqlite3'}",
            "DJANGO_LOG_LEVEL": "WARNING",
            "CONVAI_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("CONVAI_API_BASE_URL", None)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="convai-bench-"))
    prepare_environment(workdir)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from convai.client import ConvaiClient, new_session
    from sandbox.services import create_sandbox_key

    call_command("migrate", verbosity=0, interactive=False)
    api_key = create_sandbox_key("benchmark")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.server", str(port)],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    try:
        wait_for(port, server)
        base_url = f"http://127.0.0.1:{port}/sandbox"
        pooled = ConvaiClient(api_key, base_url=base_url, read_retries=0)
        # A new connection per call: a session that asks the server to close after each answer.
        fresh_session = new_session()
        fresh_session.headers["Connection"] = "close"
        fresh = ConvaiClient(api_key, base_url=base_url, read_retries=0, session=fresh_session)
        char_id = pooled.create_character("Benchmark", "MALE", "A character to read back.")
        timed(WARMUP, lambda: pooled.get_character(char_id))
        timed(WARMUP, lambda: fresh.get_character(char_id))
        # Interleaved rounds, so a change in machine load hits both variants alike.
        pooled_times: list[float] = []
        fresh_times: list[float] = []
        for _ in range(ROUNDS):
            pooled_times += timed(GETS // ROUNDS, lambda: pooled.get_character(char_id))
            fresh_times += timed(GETS // ROUNDS, lambda: fresh.get_character(char_id))
        pooled_gets, fresh_gets = summary(pooled_times), summary(fresh_times)
        creates = summary(
            timed(CREATES, lambda: pooled.create_character("Bench", "MALE", "Backstory."))
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
        db_path = Path(os.environ["DATABASE_URL"].removeprefix("sqlite:///"))
        shutil.rmtree(db_path.parent, ignore_errors=True)

    print("## Convai client benchmark\n")
    print(f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}")
    print(f"- Python {platform.python_version()} on {platform.system()} {platform.release()}")
    print("- Server: sandbox on Django's threaded WSGI server (TCP_NODELAY), SQLite\n")
    print("| run | calls | total (s) | calls/s | mean (ms) | p50 (ms) | p95 (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, count, (total, rate, mean, p50, p95) in (
        ("get_character, pooled keep-alive", GETS, pooled_gets),
        ("get_character, new connection per call", GETS, fresh_gets),
        ("create_character, sequential (pooled)", CREATES, creates),
    ):
        print(
            f"| {name} | {count} | {total:.2f} | {rate:.0f} | {mean:.2f} | {p50:.2f} | {p95:.2f} |"
        )
    print(
        f"\nPooled vs new connection per call: {fresh_gets[0] / pooled_gets[0]:.2f}x faster "
        f"in total time, {fresh_gets[3] / pooled_gets[3]:.2f}x at the median."
    )
    print(f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def run_all(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.run",
        description="Run the benchmarks; unknown options go to tests.bench.characters.",
    )
    parser.add_argument("--only", choices=["client", "characters", "scale"])
    parser.add_argument(
        "--scale",
        action="store_true",
        default=bool(os.environ.get("BENCH_SCALE")),
        help="also run tests.bench.scale (PostgreSQL at a studio's scale, gunicorn under wrk: "
        "about 15 minutes); env BENCH_SCALE=1, as in `make bench BENCH_SCALE=1`",
    )
    args, rest = parser.parse_known_args(argv)
    if args.only == "scale":
        from tests.bench import scale

        return scale.main([])
    status = 0
    if args.only != "characters":
        try:
            main()
        except Exception as error:  # report it, and still run the characters benchmark
            print(f"The client benchmark failed: {type(error).__name__}: {error}\n")
            status = 1
        print()
    status |= 0 if args.only else subprocess.call([sys.executable, "-m", "tests.bench.jobs"])
    status |= (
        0
        if args.only
        else subprocess.call([sys.executable, "-m", "tests.bench.jobs", "--fairness"])
    )
    if args.only != "client":
        from tests.bench import characters

        status |= characters.main(rest)
    if args.only is None:  # the audit log at a million events (tests/bench/audit.py)
        status |= __import__("tests.bench.audit", fromlist=["main"]).main(rest)
    status |= 0 if args.only else subprocess.call([sys.executable, "-m", "tests.bench.bundles"])
    if args.scale and args.only is None:  # PostgreSQL at scale, the production server under load
        status |= subprocess.call([sys.executable, "-m", "tests.bench.scale"])
    # The game builds' token broker against a bare /user/connect (PostgreSQL on loopback).
    status |= 0 if args.only else subprocess.call([sys.executable, "-m", "tests.bench.builds"])
    return status


if __name__ == "__main__":
    sys.exit(run_all())
