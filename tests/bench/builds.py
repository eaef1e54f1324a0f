"""The token broker over loopback: `python -m tests.bench.builds [--postgres URL] [--requests N]`
(also run by `make bench`).

Three servers, as in production (the broker and "Convai" are different hosts): the sandbox on
one port, the product on another, and a no-op proxy on a third (each Django's threaded WSGI
server with TCP_NODELAY, one process), one PostgreSQL database (several writers at once: SQLite
would measure its file lock). A build is registered with limits far above the run.

Measured, each with keep-alive clients:
1. one client, sequential: a bare `POST /user/connect` at the sandbox (what a studio's own
   backend does) against `GET /api/builds/<id>/token` (credential check, limits, one Convai
   call, the encrypted token row and its audit event) — the broker's overhead at p50 — and
   against the no-op proxy (tests/bench/floor.py: the product's settings and middleware and one
   `connect` through the product's client, nothing else), which is what the extra hop alone
   costs, so the broker's own work is the difference between it and the broker;
2. 16 concurrent clients, a bounded number of requests each, for all three: p50, p99, req/s.

Prints a Markdown report (docs/benchmarks.md, "Token broker")."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from tests.bench.run import cpu_model, free_port, wait_for
from tests.bench.support import worker_environment

ROOT = Path(__file__).resolve().parents[2]
PG_DATABASE = os.environ.get("BENCH_BUILDS_DB") or "bench_builds"
DEFAULT_POSTGRES = f"postgres://postgres@127.0.0.1:5432/{PG_DATABASE}"
CLIENTS = 16
SEQUENTIAL = 300
WARMUP = 30
GOAL_MS = 2.0


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def figures(durations: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(durations)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 0.5),
        "p99": percentile(ordered, 0.99),
        "rps": len(ordered) / wall,
    }


def sequential(call: Callable[[requests.Session], int], count: int) -> dict[str, float]:
    session = requests.Session()
    for _ in range(WARMUP):
        call(session)
    durations = []
    started = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        status = call(session)
        durations.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise SystemExit(f"Unexpected HTTP {status} in the benchmark.")
    return figures(durations, time.perf_counter() - started)


def concurrent(
    call: Callable[[requests.Session], int], clients: int, each: int
) -> dict[str, float]:
    durations: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client() -> None:
        session = requests.Session()
        call(session)  # one warm-up request opens the keep-alive connection
        ready.wait()
        mine = []
        for _ in range(each):
            began = time.perf_counter()
            status = call(session)
            mine.append((time.perf_counter() - began) * 1000)
            if status != 200:
                failures.append(status)
        with lock:
            durations.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. HTTP {failures[0]}.")
    return figures(durations, wall)


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    maintenance = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        name = sql.Identifier(urlsplit(url).path.lstrip("/"))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def migrate() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def setup() -> tuple[str, str, str]:
    """(raw sandbox key, build id, build credential), made through the product's services
    (the key verified with the running sandbox)."""
    from builds import services as builds
    from keys.services import add_api_key
    from sandbox.services import create_sandbox_key
    from teams.models import Membership, Role, Team
    from tests.factories import UserFactory

    raw_key = create_sandbox_key("bench")
    user = UserFactory.create()
    team = Team.objects.create(name="Bench", slug="bench")
    admin = Membership.objects.create(team=team, user=user, role=Role.ADMIN)
    api_key = add_api_key(actor=user, label="Bench key", raw_key=raw_key)
    issued = builds.register_build(
        actor=admin,
        settings_=builds.BuildSettings(
            name="Bench build",
            api_key_id=api_key.pk,
            allowed_origins=[],
            burst_per_minute=10_000,
            per_hour=1_000_000,
            expires_at=None,
        ),
    )
    return raw_key, str(issued.build.pk), issued.credential


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.builds", description=__doc__)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES") or DEFAULT_POSTGRES)
    parser.add_argument("--requests", type=int, default=100, help="per concurrent client")
    args = parser.parse_args(argv)
    database_url = urlunsplit(urlsplit(args.postgres)._replace(path=f"/{PG_DATABASE}"))
    workdir = Path(tempfile.mkdtemp(prefix="convai-bench-builds-"))
    (workdir / "static").mkdir()
    sandbox_port, broker_port, floor_port = free_port(), free_port(), free_port()
    env = worker_environment(
        workdir,
        database_url,
        CONVAI_SANDBOX="1",
        CONVAI_API_BASE_URL=f"http://127.0.0.1:{sandbox_port}/sandbox",
        CONVAI_READ_RETRIES="0",
        CONVAI_BUILD_TEAM_PER_HOUR="100000000",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
    )
    recreate_database(database_url)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        migrate()
        ports = {sandbox_port: "", broker_port: "", floor_port: "tests.bench.floor"}
        for port, urlconf in ports.items():
            command = [sys.executable, "-m", "tests.bench.server", str(port)]
            servers.append(subprocess.Popen([*command, urlconf], cwd=ROOT, env=env))
        for port, server in zip(ports, servers, strict=True):
            wait_for(port, server)
        raw_key, build_id, credential = setup()
        connect_url = f"http://127.0.0.1:{sandbox_port}/sandbox/user/connect"
        token_url = f"http://127.0.0.1:{broker_port}/api/builds/{build_id}/token"
        floor_url = f"http://127.0.0.1:{floor_port}/floor/token"

        def bare(session: requests.Session) -> int:
            return session.post(
                connect_url, json={}, headers={"CONVAI-API-KEY": raw_key}, timeout=30
            ).status_code

        def broker(session: requests.Session) -> int:
            return session.get(
                token_url, headers={"X-Convai-Admin-Build": credential}, timeout=30
            ).status_code

        def floor(session: requests.Session) -> int:
            return session.get(
                floor_url, headers={"CONVAI-API-KEY": raw_key}, timeout=30
            ).status_code

        calls = {"bare": bare, "no-op proxy": floor, "broker": broker}
        results = {
            f"{name}, 1 client": sequential(call, SEQUENTIAL) for name, call in calls.items()
        }
        for name, call in calls.items():
            results[f"{name}, {CLIENTS} clients"] = concurrent(call, CLIENTS, args.requests)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
        recreate_database(database_url, drop_only=True)

    print("## Token broker benchmark\n")
    print(f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}")
    print(
        "- Servers: sandbox, product and no-op proxy, each one process of Django's threaded "
        "WSGI server (TCP_NODELAY), DEBUG off; PostgreSQL on loopback"
    )
    print(f"- {SEQUENTIAL} sequential requests; {CLIENTS} clients x {args.requests} requests\n")
    print("| run | requests | p50 (ms) | p99 (ms) | requests/s |")
    print("|---|---:|---:|---:|---:|")
    for name, row in results.items():
        print(
            f"| {name} | {row['n']:.0f} | {row['p50']:.2f} | {row['p99']:.2f} | {row['rps']:.0f} |"
        )
    bare_p50 = results["bare, 1 client"]["p50"]
    hop = results["no-op proxy, 1 client"]["p50"] - bare_p50
    overhead = results["broker, 1 client"]["p50"] - bare_p50
    verdict = "met" if overhead <= GOAL_MS else "NOT met"
    print(
        f"\nBroker overhead at p50, one client: {overhead:.2f} ms "
        f"(goal <= {GOAL_MS} ms: {verdict}). Of it, the extra hop alone (the no-op proxy): "
        f"{hop:.2f} ms; the broker's own work: {overhead - hop:.2f} ms."
    )
    print(f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
