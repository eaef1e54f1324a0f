"""The characters benchmark (issue 7): the product's character pages against Django's admin.

`python -m tests.bench.characters [--postgres [URL]]` (also run by `make bench`). For each
database (always SQLite; PostgreSQL when `--postgres` is given or BENCH_POSTGRES is set) a
worker process gets a fresh, empty database, migrates it, seeds a team through
`seed_characters` (10,000 characters, 50,000 revisions), ANALYZEs it, and then times, in
interleaved rounds after a warm-up, the median render of each product page next to the
equivalent page of a Django admin changelist over the same rows:

    list (first page), search (?q=), filter by voice, page 150, detail page

The admin is benchmark-only: `django.contrib.admin` is added to INSTALLED_APPS inside the
worker before `django.setup()`, and its AdminSite (tests/bench/admin_site.py) is reached
through override_settings(ROOT_URLCONF="tests.bench.urls"). The product ships no admin.

Requests go through Django's test Client (the whole middleware stack, no network) as a
signed-in team Owner (also staff/superuser, for the admin's sake; the product ignores both),
with DEBUG off, as in production, on the cache the settings choose (the database cache
unless REDIS_URL is set). Each list page is timed three times for the product: as it is
served; with Django's cache emptied before the request (cold: as after a deploy or an
eviction; the goal is checked on both); and, for information, right after a character
changed (cache emptied and the team's stored facets dropped, so the filter options are
computed again from the characters: characters.models.CharacterFacets). PostgreSQL: a
dedicated database `bench_characters` (or $BENCH_CHARACTERS_DB) is created and dropped on the
server of the URL (its database name is ignored); `test` and every other database are never
touched.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.bench.support import worker_environment

ROOT = Path(__file__).resolve().parents[2]
# Its own database on the server (BENCH_CHARACTERS_DB names another, so that parallel runs
# against one server do not drop each other's).
PG_DATABASE = os.environ.get("BENCH_CHARACTERS_DB") or "bench_characters"
DEFAULT_POSTGRES = f"postgres://postgres@127.0.0.1:5432/{PG_DATABASE}"
TEAM_SLUG = "bench"
SEARCH_TERM = "lighthouse"  # in about a fifth of the seeded names and backstories
GOAL = 0.5  # the product's list at most half the admin changelist's median


# --- the orchestrator (no Django here) --------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.characters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("BENCH_POSTGRES") or DEFAULT_POSTGRES,
        default=os.environ.get("BENCH_POSTGRES") or None,
        metavar="URL",
        help=f"Also run on PostgreSQL (default server {DEFAULT_POSTGRES}; env BENCH_POSTGRES).",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="Skip the SQLite run.")
    parser.add_argument("--characters", type=int, default=10_000)
    parser.add_argument("--revisions", type=int, default=5, help="Revisions per character.")
    parser.add_argument("--rounds", type=int, default=30, help="Timed rounds (at least 20).")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed rounds first.")
    parser.add_argument(
        "--show-queries", action="store_true", help="Print each page's SQL with timings."
    )
    parser.add_argument(
        "--strict", action="store_true", help="Exit with 1 when the goal is not met."
    )
    parser.add_argument("--worker", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 20:
        parser.error("--rounds must be at least 20")
    return args


def postgres_urls(url: str) -> tuple[str, str]:
    """(maintenance URL, benchmark database URL) on the server of `url`."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise SystemExit(f"Not a PostgreSQL URL: {parts.scheme}://…")
    named = parts.path.lstrip("/")
    if named and named not in {PG_DATABASE, "postgres"}:
        print(f"(Database {named!r} in the URL ignored: the benchmark uses {PG_DATABASE!r}.)")
    return (
        urlunsplit(parts._replace(path="/postgres")),
        urlunsplit(parts._replace(path=f"/{PG_DATABASE}")),
    )


def recreate_postgres_database(maintenance_url: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        name = sql.Identifier(PG_DATABASE)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def run_worker(backend: str, database_url: str, argv: list[str]) -> int:
    workdir = Path(tempfile.mkdtemp(prefix=f"convai-bench-{backend}-"))
    (workdir / "static").mkdir()  # STATIC_ROOT: WhiteNoise warns when it is missing
    try:
        if backend == "sqlite":
            database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        command = [sys.executable, "-m", "tests.bench.characters", *argv, "--worker", backend]
        return subprocess.run(
            command, cwd=ROOT, env=worker_environment(workdir, database_url), check=False
        ).returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    passed = [a for a in argv if not a.startswith("--postgres") and a != "--no-sqlite"]
    passed = [a for a in passed if not a.startswith(("postgres://", "postgresql://"))]
    status = 0
    print("## Characters benchmark: the product's pages vs Django's admin changelist\n")
    if not args.no_sqlite:
        status |= run_worker("sqlite", "", passed)
    if args.postgres:
        maintenance_url, database_url = postgres_urls(args.postgres)
        recreate_postgres_database(maintenance_url)
        try:
            status |= run_worker("postgres", database_url, passed)
        finally:
            recreate_postgres_database(maintenance_url, drop_only=True)
    else:
        print("(PostgreSQL skipped: pass --postgres [URL] or set BENCH_POSTGRES.)")
    return status


# --- the worker (one database, one process) ---------------------------------------------------


@dataclass
class Page:
    name: str
    ours: str | None
    admin: str
    expect: str  # a name both pages must show (the same rows on both sides)
    is_list: bool = True
    error: str = "no product URL yet"
    ours_ms: list[float] = field(default_factory=list)
    cold_ms: list[float] = field(default_factory=list)  # ours after cache.clear()
    changed_ms: list[float] = field(default_factory=list)  # and the stored facets dropped
    admin_ms: list[float] = field(default_factory=list)
    ours_queries: int = 0
    admin_queries: int = 0
    ours_kb: float = 0.0
    admin_kb: float = 0.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def worker(args: argparse.Namespace) -> int:
    import django
    from django.conf import settings

    # The admin exists only in this process: added before the app registry is populated.
    settings.INSTALLED_APPS = [
        *settings.INSTALLED_APPS,
        "django.contrib.admin.apps.SimpleAdminConfig",
    ]
    django.setup()

    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from .seed_characters import seed_characters

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    migrated = time.perf_counter() - started
    started = time.perf_counter()
    seed_characters(team=TEAM_SLUG, characters=args.characters, revisions=args.revisions)
    seeded = time.perf_counter() - started
    with connection.cursor() as cursor:
        # What autovacuum does after a bulk load: statistics, and on PostgreSQL the visibility
        # map that lets an index-only scan skip the table (same for ours and the admin).
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            db_version = "PostgreSQL " + str(cursor.fetchone()[0]).split()[1]
    else:
        import sqlite3

        db_version = f"SQLite {sqlite3.sqlite_version}"

    with override_settings(ROOT_URLCONF="tests.bench.urls"):
        return measure(args, db_version, migrated, seeded)


def build_pages() -> tuple[list[Page], Any]:
    from django.db.models import Count, Q
    from django.urls import NoReverseMatch, reverse
    from django.utils.html import escape

    from accounts.models import User
    from characters.models import Character
    from teams.models import Team

    from .admin_site import CharacterAdmin

    owner = User.objects.get(username="bench-owner")
    CharacterAdmin.team_id = Team.objects.get(slug=TEAM_SLUG).pk
    owner.is_staff = owner.is_superuser = True  # for the admin only; the product ignores both
    owner.save(update_fields=["is_staff", "is_superuser"])
    live = Character.objects.filter(team__slug=TEAM_SLUG, deleted_at__isnull=True).order_by(
        "sort_name", "pk"
    )
    voice = (
        live.order_by().values("voice_type").annotate(n=Count("pk")).order_by("-n")[0]["voice_type"]
    )
    searched = live.filter(Q(name__icontains=SEARCH_TERM) | Q(backstory__icontains=SEARCH_TERM))
    total = live.count()
    page_number = max(1, min(150, (total + 49) // 50))  # 150 with the default 10,000 rows
    deep = live[(page_number - 1) * 50]
    first = live[0]

    def ours(name: str, query: str = "", **kwargs: Any) -> str | None:
        try:
            return reverse(name, kwargs={"team_slug": TEAM_SLUG, **kwargs}) + query
        except NoReverseMatch:
            return None

    changelist = reverse("bench_admin:characters_character_changelist")
    change = reverse("bench_admin:characters_character_change", args=[first.pk])
    pages = [
        Page("list, first page", ours("characters:character-list"), changelist, first.name),
        Page(
            f"search ?q={SEARCH_TERM} ({searched.count():,} rows)",
            ours("characters:character-list", f"?q={SEARCH_TERM}"),
            f"{changelist}?q={SEARCH_TERM}",
            searched[0].name,
        ),
        Page(
            f"filter by voice ({live.filter(voice_type=voice).count():,} rows)",
            ours("characters:character-list", f"?voice={voice}"),
            f"{changelist}?voice_type={voice}",
            live.filter(voice_type=voice)[0].name,
        ),
        Page(
            f"page {page_number} (rows from {(page_number - 1) * 50 + 1:,})",
            ours("characters:character-list", f"?page={page_number}"),
            f"{changelist}?p={page_number}",
            deep.name,
        ),
        Page(
            "detail (ours) / change form (admin)",
            ours("characters:character-detail", character_id=first.pk),
            change,
            first.name,
            is_list=False,
        ),
    ]
    for page in pages:
        page.expect = str(escape(page.expect))
    return pages, owner


def measure(args: argparse.Namespace, db_version: str, migrated: float, seeded: float) -> int:
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from characters.models import CharacterFacets

    pages, owner = build_pages()
    client = Client()
    client.force_login(owner)

    def get(url: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}, not 200.")
        return elapsed, response.content

    # Correctness first: both sides answer 200 and show the same row. A product page that
    # fails is reported and left out (the admin side must work). Query counts are taken on a
    # second visit: the first one of a session also saves the session (the current team).
    for page in pages:
        for side, url in (("ours", page.ours), ("admin", page.admin)):
            if url is None:
                continue
            try:
                get(url)
                with CaptureQueriesContext(connection) as queries:
                    _, body = get(url)
            except (Exception, SystemExit) as error:
                if side == "admin":
                    raise
                page.ours, page.error = None, f"{type(error).__name__}: {error}"[:120]
                continue
            if page.expect.encode() not in body:
                raise SystemExit(f"{side} {url} does not show {page.expect!r}.")
            setattr(page, f"{side}_queries", len(queries))
            setattr(page, f"{side}_kb", len(body) / 1024)
            if args.show_queries:
                print(f"\n#### {side}: {url} ({len(queries)} queries)\n")
                for query in queries.captured_queries:
                    print(f"- {float(query['time']) * 1000:.1f} ms: `{query['sql'][:600]}`")

    for _ in range(args.warmup):
        for page in pages:
            for url in (page.ours, page.admin):
                if url is not None:
                    get(url)
    gc.collect()
    for round_number in range(args.rounds):
        for page in pages:
            # Interleaved, and alternating who goes first, so load changes hit both alike.
            # "cold" is ours with Django's cache emptied first (untimed), as after a deploy
            # or an eviction; "changed" also drops the team's stored facets, as a character
            # change does (the filter options computed again).
            sides = [
                ("ours", page.ours),
                ("cold", page.ours),
                ("changed", page.ours),
                ("admin", page.admin),
            ]
            if round_number % 2:
                sides.reverse()
            for side, url in sides:
                if url is None or (side in {"cold", "changed"} and not page.is_list):
                    continue
                if side in {"cold", "changed"}:
                    cache.clear()
                if side == "changed":
                    CharacterFacets.objects.all().delete()
                getattr(page, f"{side}_ms").append(get(url)[0])

    report(args, pages, db_version, migrated, seeded)
    if any(not page.ours_ms for page in pages):
        return 2  # a product page is missing or failed: reported in the table
    met = all(max(ratio(page), ratio(page, cold=True)) <= GOAL for page in pages if page.is_list)
    return 1 if args.strict and not met else 0


def ratio(page: Page, *, cold: bool = False) -> float:
    ours = page.cold_ms if cold else page.ours_ms
    return statistics.median(ours) / statistics.median(page.admin_ms)


def report(
    args: argparse.Namespace, pages: list[Page], db_version: str, migrated: float, seeded: float
) -> None:
    import django

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"### {db_version}\n")
    print(f"- Machine: {cpu_model()}, {cores} CPUs available (nproc)")
    print(
        f"- Python {platform.python_version()}, Django {django.get_version()}, {db_version}, "
        f"{platform.system()} {platform.release()}"
    )
    print(
        f"- Data: {args.characters:,} characters, {args.characters * args.revisions:,} revisions "
        f"(seed_characters: {seeded:.1f} s; migrate: {migrated:.1f} s), "
        "then VACUUM ANALYZE (ANALYZE on SQLite)"
    )
    print(
        f"- Median of {args.rounds} interleaved rounds after {args.warmup} warm-up rounds; "
        "Django test Client, signed in, DEBUG off"
    )
    print(f"- Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(
        "| page | ours (ms) | ours, cold cache (ms) | admin (ms) | ours/admin | cold/admin "
        "| after a change (ms) | queries ours/admin | KB ours/admin |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for page in pages:
        admin_ms = statistics.median(page.admin_ms)
        cold_ms = cold_share = changed_ms = "-"
        if page.ours_ms:
            ours_ms = f"{statistics.median(page.ours_ms):.1f}"
            share = f"{ratio(page):.2f}"
            if page.cold_ms:
                cold_ms = f"{statistics.median(page.cold_ms):.1f}"
                cold_share = f"{ratio(page, cold=True):.2f}"
            if page.changed_ms:
                changed_ms = f"{statistics.median(page.changed_ms):.1f}"
            queries = f"{page.ours_queries} / {page.admin_queries}"
            size = f"{page.ours_kb:.0f} / {page.admin_kb:.0f}"
        else:
            ours_ms = share = f"n/a ({page.error})"
            queries, size = f"- / {page.admin_queries}", f"- / {page.admin_kb:.0f}"
        print(
            f"| {page.name} | {ours_ms} | {cold_ms} | {admin_ms:.1f} | {share} | {cold_share} "
            f"| {changed_ms} | {queries} | {size} |"
        )
    lists = [page for page in pages if page.is_list and page.ours_ms]
    if lists:
        worst = max(lists, key=lambda page: max(ratio(page), ratio(page, cold=True)))
        worst_ratio = max(ratio(worst), ratio(worst, cold=True))
        verdict = "met" if worst_ratio <= GOAL else "NOT met"
        print(
            f"\nGoal (each list page at most {GOAL:.0%} of the admin's median, warm and cold "
            f"cache): {verdict}; worst list ratio {worst_ratio:.2f} ({worst.name}).\n"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
