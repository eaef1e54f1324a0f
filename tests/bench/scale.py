"""The product at a studio's scale, on PostgreSQL, behind its production server (issue 14).

`python -m tests.bench.scale [--postgres URL] [--steps ...] [--keep | --reuse]`
(`make bench BENCH_SCALE=1` runs it after the rest; it needs PostgreSQL and wrk).

Steps, each in worker processes of its own, DEBUG off, against a dedicated database
`bench_scale` on the URL's server (created and dropped here; no other database is touched):

1. seed: migrate; team `bench` with 10,000 characters of 5 revisions (50,000) and 1,000,000
   audit events, plus three other teams (500 characters, 2 revisions, 10,000 events each),
   all through COPY (tests/bench/copy_rows.py), every audit chain sealed as `record` seals
   it; then VACUUM ANALYZE (what autovacuum does after a bulk load). Each part is timed.
2. pages: median and p95 of ROUNDS renders (after warm-ups) of the characters list (first
   page, a search, a voice filter), a character's detail and history, and the audit log
   (first page, a keyset page half a million events deep, two filtered pages, two word
   searches), through Django's test Client, signed in as the team's Owner; with each page's
   query count.
3. export: the JSON Lines export of the team's whole log, streamed and consumed in a fresh
   process: seconds, rows/s, first bytes, peak RSS.
4. verify: `manage.py audit_verify` over every chain (1,030,000 events): seconds, result.
5. load: gunicorn (deploy/gunicorn.conf.py, as `make serve` runs it: 2 workers, gthread) on
   127.0.0.1, and wrk with 16 connections for 30 s on the characters list, signed in (a
   session cookie made by a worker process for the Owner): requests/s, p50/p95/p99, every
   non-200 and socket error counted, peak RSS of each web worker (VmHWM from /proc).
6. load-job: a background worker (`manage.py run_worker`, as `make run` starts it) imports
   all 2,000 characters of a key into a new team from the sandbox, 50 ms added to every
   call: first alone (no web server), then again (another new team) started with the load.

The sandbox (standing in for Convai) is served by its own process with its own SQLite
database (tests/bench/server.py), as Convai is another service.

The seed takes a few minutes; `--keep` leaves `bench_scale` after the run and `--reuse`
runs the other steps against it (drop it when done: `--steps drop`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.bench.run import cpu_model, free_port, wait_for
from tests.bench.support import ROOT, run_json_step, worker_environment

PG_DATABASE = "bench_scale"
DEFAULT_POSTGRES = f"postgres://postgres@127.0.0.1:5432/{PG_DATABASE}"
TEAM = "bench"
OTHER_TEAMS = ("north", "south", "east")
SEARCH_TERM = "lighthouse"
ROUNDS = 20
WARMUP = 3
STEPS = ("seed", "pages", "export", "verify", "load", "load-job")
IMPORT_COUNT = 2000
IMPORT_LATENCY_MS = 50


# --- workers (Django here) ----------------------------------------------------------------------


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def seed(args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection

    from .seed_audit import seed_audit_events
    from .seed_characters import seed_characters

    timings: dict[str, float] = {}

    def timed(name: str, call: Any) -> None:
        started = time.perf_counter()
        call()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    timed("migrate", lambda: call_command("migrate", verbosity=0, interactive=False))
    timed(
        "characters",
        lambda: seed_characters(team=TEAM, characters=args.characters, revisions=args.revisions),
    )
    timed("audit", lambda: seed_audit_events(team=TEAM, events=args.events))
    for slug in OTHER_TEAMS:
        timed(
            "other teams",
            lambda slug=slug: (
                seed_characters(team=slug, characters=500, revisions=2, owner=f"{slug}-owner"),
                seed_audit_events(team=slug, events=10_000),
            ),
        )
    with connection.cursor() as cursor:
        timed("vacuum analyze", lambda: cursor.execute("VACUUM ANALYZE"))
    return {"seed": timings}


def _pages() -> list[tuple[str, str]]:
    from datetime import timedelta

    from django.db.models import Count
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import User
    from audit.models import AuditEvent
    from characters.models import Character
    from teams.models import Team

    team = Team.objects.get(slug=TEAM)
    live = Character.objects.filter(team=team, deleted_at__isnull=True).order_by("sort_name", "pk")
    voice = (
        live.order_by().values("voice_type").annotate(n=Count("pk")).order_by("-n")[0]["voice_type"]
    )
    first = live[0]
    events = AuditEvent.objects.filter(team=team).order_by("-id")
    deep = events.values_list("id", flat=True)[events.count() // 2]
    actor = User.objects.get(username="auditor3")
    today = timezone.now().date()
    since, until = today - timedelta(days=270), today - timedelta(days=180)
    characters = reverse("characters:character-list", args=[TEAM])
    one = {"team_slug": TEAM, "character_id": first.pk}
    log = reverse("audit:log", args=[TEAM])
    return [
        ("characters list, first page", characters),
        (f"characters list, search ?q={SEARCH_TERM}", f"{characters}?q={SEARCH_TERM}"),
        ("characters list, voice filter (top voice)", f"{characters}?voice={voice}"),
        ("character detail", reverse("characters:character-detail", kwargs=one)),
        ("character history (5 revisions)", reverse("characters:character-history", kwargs=one)),
        ("audit log, first page", log),
        (f"audit log, keyset page {events.count() // 2:,} events deep", f"{log}?after={deep}"),
        (
            "audit log, actor + action + 90 days, half a year back",
            f"{log}?actor={actor.pk}&action=character.delete"
            f"&since={since.isoformat()}&until={until.isoformat()}",
        ),
        ("audit log, outcome=denied + action", f"{log}?outcome=denied&action=member.removed"),
        ("audit log, search: a target's name", f"{log}?q=%22Character+4242%22"),
        ("audit log, search: a word no event has", f"{log}?q=zeppelin"),
    ]


def _owner_client() -> Any:
    from django.test import Client

    from teams.models import Membership, Role

    client = Client()
    client.force_login(Membership.objects.get(team__slug=TEAM, role=Role.OWNER).user)
    return client


def pages(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _owner_client()
    urls = _pages()
    results: dict[str, Any] = {}
    for name, url in urls:
        for _ in range(WARMUP):
            assert client.get(url).status_code == 200, url
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        results[name] = {"queries": len(queries), "ms": []}
    for _ in range(args.rounds):
        for name, url in urls:
            started = time.perf_counter()
            response = client.get(url)
            results[name]["ms"].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, url
    return {"pages": results}


def export(args: argparse.Namespace) -> dict[str, Any]:
    from django.urls import reverse

    from .audit import stream_export

    return stream_export(_owner_client(), reverse("audit:export-jsonl", args=[TEAM]))


def verify(args: argparse.Namespace) -> dict[str, Any]:
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    started = time.perf_counter()
    try:
        call_command("audit_verify", stdout=out, stderr=out)
        passed = True
    except CommandError as error:
        passed, _ = False, out.write(str(error))
    return {
        "verify_s": time.perf_counter() - started,
        "passed": passed,
        "rss_mb": peak_rss_mb(),
        "output": out.getvalue()[-2000:],
    }


def session(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    return {"cookie": _owner_client().cookies[settings.SESSION_COOKIE_NAME].value}


def job_start(args: argparse.Namespace) -> dict[str, Any]:
    """A new team whose Owner adds the sandbox key and starts "import all" (as the page does)."""
    from accounts.models import User
    from characters.bulk import importing
    from keys.services import add_api_key, client_for
    from teams.models import Membership, Role, Team

    owner = User.objects.create(username=f"importer-{args.tag}")
    team = Team.objects.create(name=f"Imports {args.tag}", slug=f"imports-{args.tag}")
    member = Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    key = add_api_key(actor=owner, label="Sandbox", raw_key=os.environ["BENCH_SANDBOX_KEY"])
    ids = [c.character_id for c in client_for(key).list_characters()]
    job = importing.start_import_all(actor=member, api_key_id=key.pk, convai_ids=ids)
    return {"job": job.pk, "items": len(ids)}


def job_status(args: argparse.Namespace) -> dict[str, Any]:
    from jobs.models import Job

    job = Job.objects.get(pk=args.job)
    wall = (
        (job.finished_at - job.started_at).total_seconds()
        if job.started_at and job.finished_at
        else None
    )
    return {"state": job.state, "done": job.done, "wall_s": wall, "runs": job.runs}


WORKER_STEPS = {
    "seed": seed,
    "pages": pages,
    "export": export,
    "verify": verify,
    "session": session,
    "job-start": job_start,
    "job-status": job_status,
}


def worker(args: argparse.Namespace) -> dict[str, Any]:
    _setup()
    return WORKER_STEPS[args.worker](args)


# --- the orchestrator (no Django here) -----------------------------------------------------------


def _stable_secret(database_url: str, purpose: str) -> str:
    """Benchmark-only secrets derived from the database URL, so that a kept database (its
    chains sealed, its key encrypted, its sessions signed) still fits a later --reuse run."""
    digest = hashlib.sha256(f"bench-scale:{purpose}:{database_url}".encode()).digest()
    return base64.b64encode(digest).decode()


def environment(database_url: str, workdir: Path, sandbox_port: int) -> dict[str, str]:
    return worker_environment(
        workdir,
        database_url,
        DJANGO_SECRET_KEY=_stable_secret(database_url, "secret"),
        DJANGO_ALLOWED_HOSTS="testserver,127.0.0.1",
        CONVAI_ADMIN_ENCRYPTION_KEYS=f"bench:{_stable_secret(database_url, 'keyring')}",
        CONVAI_ADMIN_AUDIT_KEYS=f"bench:{_stable_secret(database_url, 'audit')}",
        CONVAI_SANDBOX="1",  # as `make run`: the sandbox's pages exist
        CONVAI_API_BASE_URL=f"http://127.0.0.1:{sandbox_port}/sandbox",
    )


def step(env: dict[str, str], name: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    sizes = ("--characters", str(args.characters), "--revisions", str(args.revisions))
    sizes += ("--events", str(args.events), "--rounds", str(args.rounds))
    return run_json_step("tests.bench.scale", env, "--worker", name, *sizes, *extra)


def _pg(maintenance_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(sql)


class Services:
    """The sandbox server and gunicorn, started and stopped by this process."""

    def __init__(self, env: dict[str, str], workdir: Path, sandbox_port: int) -> None:
        self.env = env
        self.workdir = workdir
        self.sandbox_port = sandbox_port
        self.processes: list[subprocess.Popen[bytes]] = []

    def start_sandbox(self) -> str:
        """The sandbox in its own SQLite database, seeded with IMPORT_COUNT characters and
        the latency fault; returns the raw key of its account (a throwaway sandbox key)."""
        env = {
            **self.env,
            "DATABASE_URL": f"sqlite:///{self.workdir / 'sandbox.sqlite3'}",
            "CONVAI_SANDBOX": "1",
        }
        seeded = subprocess.run(
            [
                *(sys.executable, "-m", "tests.bench.jobs", "--seed-sandbox"),
                *("--count", str(IMPORT_COUNT), "--latency-ms", str(IMPORT_LATENCY_MS)),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.server", str(self.sandbox_port)], cwd=ROOT, env=env
        )
        self.processes.append(server)
        wait_for(self.sandbox_port, server)
        return seeded.stdout.strip().splitlines()[-1]

    def start(
        self,
        command: list[str],
        *,
        port: int | None = None,
        log: str = "",
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `command` (with `env` added to the services' environment); its output goes to
        `log` in the work directory when named."""
        output = (self.workdir / log).open("ab") if log else None
        merged = subprocess.STDOUT if log else None
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=output, stderr=merged
        )
        self.processes.append(process)
        if port is not None:
            wait_for(port, process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self.processes):
            self.stop(process)


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def signed_in_get(url: str, cookie: str) -> tuple[int, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={cookie}"})
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), b""


def run_wrk(url: str, cookie: str, args: argparse.Namespace) -> dict[str, Any]:
    status, body = signed_in_get(url, cookie)
    if status != 200 or b"character" not in body.lower():
        raise SystemExit(f"GET {url} with the session answered {status}: not the list.")
    result = subprocess.run(
        [
            *("wrk", "--threads", "2", "--connections", str(args.clients)),
            *("--duration", f"{args.duration}s", "--timeout", "10s"),
            *("--script", str(ROOT / "tests/bench/wrk_report.lua"), url),
        ],
        env={**os.environ, "WRK_COOKIE": f"sessionid={cookie}"},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("WRK-JSON "))
    figures = dict(json.loads(line.removeprefix("WRK-JSON ")))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["errors"] = sum(
        figures[k] for k in ("not_200", "connect", "read", "write", "status", "timeout")
    )
    return figures


def wait_for_job(env: dict[str, str], args: argparse.Namespace, job: int) -> dict[str, Any]:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = step(env, "job-status", args, "--job", str(job))
        if status["state"] not in {"queued", "running"}:
            return status
        time.sleep(1)
    raise SystemExit(f"Job {job} did not finish in 15 minutes.")


def load(
    env: dict[str, str], services: Services, args: argparse.Namespace, *, with_job: bool
) -> dict[str, Any]:
    """The list under wrk against gunicorn. with_job: first the import alone (no web server),
    then the same import started just before the load, in another new team."""
    result: dict[str, Any] = {"threads": args.threads}
    job_worker = None
    if with_job:
        job_worker = services.start(
            [sys.executable, "manage.py", "run_worker", "--no-reload", "--no-startup-delay"],
            log="job-worker.log",
        )
        alone = step(env, "job-start", args, "--tag", f"alone-{os.getpid()}")
        result["job_alone"] = wait_for_job(env, args, alone["job"])
    port = free_port()
    cookie = step(env, "session", args)["cookie"]
    url = f"http://127.0.0.1:{port}/t/{TEAM}/characters/"
    # The production server as `make serve` runs it: gunicorn with deploy/gunicorn.conf.py,
    # configured through its WEB_* variables (access log off: wrk's requests would fill it).
    server = services.start(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py")],
        port=port,
        env={
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_WORKERS": "2",
            "WEB_THREADS": str(args.threads),
            "WEB_ACCESS_LOG": "0",
            "WEB_LOG_LEVEL": "warning",
            "WEB_GRACEFUL_TIMEOUT": "5",
        },
    )
    try:
        for _ in range(20):  # warm both workers (imports, first queries, caches)
            signed_in_get(url, cookie)
        if with_job:
            started = step(env, "job-start", args, "--tag", f"load-{os.getpid()}")
            result["job_items"] = started["items"]
        result["load"] = run_wrk(url, cookie, args)
        result["rss_mb"] = [peak_rss_mb(pid) for pid in worker_pids(server.pid)]
        if with_job:
            result["job"] = wait_for_job(env, args, started["job"])
    finally:
        services.stop(server)
        if job_worker is not None:
            services.stop(job_worker)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server = os.environ.get("BENCH_POSTGRES") or DEFAULT_POSTGRES
    parser.add_argument("--postgres", default=server, metavar="URL", help="(env BENCH_POSTGRES)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {STEPS}")
    parser.add_argument("--keep", action="store_true", help="leave bench_scale for --reuse")
    parser.add_argument("--reuse", action="store_true", help="skip the seed, use bench_scale")
    parser.add_argument("--characters", type=int, default=10_000)
    parser.add_argument("--revisions", type=int, default=5)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--clients", type=int, default=16, help="wrk connections")
    parser.add_argument("--duration", type=int, default=30, help="seconds of load")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--worker", choices=sorted(WORKER_STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    parser.add_argument("--job", type=int, default=0, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.worker:
        print(json.dumps(worker(args), default=str))
        return 0
    steps = [s for s in args.steps.split(",") if s]
    unknown = set(steps) - {*STEPS, "drop"}
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; choose from {STEPS}")
    if args.reuse and "seed" in steps:
        steps.remove("seed")
    if {"load", "load-job"} & set(steps) and shutil.which("wrk") is None:
        raise SystemExit("The load steps need wrk: apt-get install wrk (Debian).")

    parts = urlsplit(args.postgres)
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    database_url = urlunsplit(parts._replace(path=f"/{PG_DATABASE}"))
    if "drop" in steps:
        _pg(maintenance, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="convai-scale-bench-"))
    (workdir / "static").mkdir()
    sandbox_port = free_port()
    env = environment(database_url, workdir, sandbox_port)
    services = Services(env, workdir, sandbox_port)
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    if "seed" in steps:
        _pg(maintenance, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        _pg(maintenance, f"CREATE DATABASE {PG_DATABASE}")
    try:
        for name in steps:
            print(f"  scale: {name}...", file=sys.stderr, flush=True)
            if name in {"seed", "pages", "export", "verify"}:
                results[name] = step(env, name, args)
            elif name in {"load", "load-job"}:
                if "BENCH_SANDBOX_KEY" not in env:
                    env["BENCH_SANDBOX_KEY"] = services.start_sandbox()
                results[name] = load(env, services, args, with_job=name == "load-job")
            results.setdefault("load_during", []).append((name, os.getloadavg()[0]))
    finally:
        services.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            _pg(maintenance, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    report(results, args)
    return 0 if all(r.get("load", {}).get("errors", 0) == 0 for r in _loads(results)) else 1


def _loads(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [results[name] for name in ("load", "load-job") if name in results]


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(len(ordered) * 0.95) - 1)]


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print("## The product at scale on PostgreSQL, behind gunicorn (issue 14)\n")
    print(f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs (nproc)")
    print(f"- Python {platform.python_version()} on {platform.system()} {platform.release()}")
    print(f"- Command: `python -m tests.bench.scale --steps {args.steps}`")
    print(
        "- Load average (1/5/15 min) at the start: "
        + ", ".join(f"{x:.2f}" for x in results["load_before"])
        + "; 1-min after each step: "
        + ", ".join(f"{n} {x:.2f}" for n, x in results.get("load_during", []))
        + "\n"
    )
    if "seed" in results:
        seed = results["seed"]["seed"]
        total = sum(v for k, v in seed.items() if k != "migrate")
        print(
            f"### Seed: {args.characters:,} characters, {args.characters * args.revisions:,} "
            f"revisions, {args.events:,} audit events in team `{TEAM}`; three other teams "
            "(500 characters, 1,000 revisions, 10,000 events each)\n"
        )
        print("| part | seconds |")
        print("|---|---:|")
        for name, seconds in seed.items():
            print(f"| {name} | {seconds:.1f} |")
        print(f"| **total (without migrate)** | **{total:.1f}** |\n")
    if "pages" in results:
        print(f"### Pages ({args.rounds} rounds after {WARMUP} warm-ups, test Client, DEBUG off)\n")
        print("| page | median (ms) | p95 (ms) | queries |")
        print("|---|---:|---:|---:|")
        for name, page in results["pages"]["pages"].items():
            print(
                f"| {name} | {statistics.median(page['ms']):.1f} | {_p95(page['ms']):.1f} "
                f"| {page['queries']} |"
            )
        print()
    if "export" in results:
        e = results["export"]
        print(
            f"### Audit export (JSON Lines, whole team): {e['rows']:,} rows in "
            f"{e['export_s']:.1f} s ({e['rows_per_s']:,.0f} rows/s), first bytes after "
            f"{e['first_bytes_ms']:.0f} ms, peak RSS {e['rss_mb']:.0f} MB\n"
        )
    if "verify" in results:
        v = results["verify"]
        verdict = "passed" if v["passed"] else "FAILED"
        print(
            f"### `manage.py audit_verify`: {verdict} in {v['verify_s']:.1f} s, peak RSS "
            f"{v['rss_mb']:.0f} MB\n"
        )
        if not v["passed"]:
            print("```\n" + v["output"] + "\n```\n")
    for name in ("load", "load-job"):
        if name not in results:
            continue
        r = results[name]
        w = r["load"]
        title = "the characters list" + (
            f", import all of {r.get('job_items', 0):,} beside it" if name == "load-job" else ""
        )
        print(
            f"### Load: {title} (wrk, {args.clients} connections, {args.duration} s; gunicorn "
            f"2 workers x {r['threads']} threads)\n"
        )
        print(
            "| requests | req/s | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | errors "
            "| peak RSS per worker (MB) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---|")
        print(
            f"| {w['requests']:,} | {w['rps']:.1f} | {w['p50_ms']:.0f} | {w['p95_ms']:.0f} "
            f"| {w['p99_ms']:.0f} | {w['max_ms']:.0f} | {w['errors']} "
            f"| {' / '.join(f'{x:.0f}' for x in r['rss_mb'])} |\n"
        )
        if "job" in r:
            job, alone = r["job"], r["job_alone"]
            print(
                f"Import all of {r['job_items']:,} ({IMPORT_LATENCY_MS} ms added to every sandbox "
                f"call, one worker): {job['state']}, {job['done']:,} items in "
                f"{job['wall_s']:.1f} s ({job['runs']} runs), started with the load "
                f"(which lasted {args.duration} s); "
                f"the same import alone just before, no web server: {alone['wall_s']:.1f} s "
                f"({alone['runs']} runs).\n"
            )


if __name__ == "__main__":
    sys.exit(main())
