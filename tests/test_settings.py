"""Settings come from the environment; production refuses to start half-configured."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.manage import PROD_ENV, ROOT, run_manage


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "CONVAI_ADMIN_ENCRYPTION_KEYS", "CONVAI_ADMIN_AUDIT_KEYS"]
)
def test_production_refuses_to_start_without_secrets(missing: str) -> None:
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_deploy_check_passes_with_production_settings() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PROD_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.argon2
def test_argon2_is_the_first_password_hasher(settings) -> None:
    assert settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_sandbox_is_off_and_convai_is_real_by_default() -> None:
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.CONVAI_SANDBOX, s.CONVAI_API_BASE_URL)",
        env=PROD_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["False", "https://api.convai.com"]


# --- var/ and the SQLite file are owner-only (security finding 6) ---------------------------

CREATE_DB = "from django.db import connection; connection.cursor().execute('select 1')"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_var_dir_and_database_file_are_created_owner_only(tmp_path: Path) -> None:
    var = tmp_path / "var"
    result = run_manage(
        "shell", "-c", CREATE_DB, env={**PROD_ENV, "CONVAI_ADMIN_VAR_DIR": str(var)}
    )
    assert result.returncode == 0, result.stderr
    assert _mode(var) == 0o700
    assert _mode(var / "db.sqlite3") == 0o600


def test_sqlite_journal_files_are_owner_only_without_a_process_umask(tmp_path: Path) -> None:
    """SQLite gives its -journal file the database file's mode: no `os.umask` is needed (nor
    set: the process keeps the umask it was started with)."""
    var = tmp_path / "var"
    script = (
        "import os; from pathlib import Path; from django.db import connection, transaction;"
        "c = connection.cursor(); c.execute('create table t (x integer)');\n"
        "with transaction.atomic():\n"
        "    c.execute('insert into t values (1)');"
        "    j = Path(connection.settings_dict['NAME'] + '-journal');"
        "    print(oct(j.stat().st_mode & 0o777))\n"
        "print(oct(os.umask(0o022)))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env={
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DJANGO_", "CONVAI_", "DATABASE_URL"))
            },
            **PROD_ENV,
            "CONVAI_ADMIN_VAR_DIR": str(var),
        },
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,
    )
    assert result.returncode == 0, result.stderr
    journal, umask = result.stdout.split()[-2:]
    assert (journal, umask) == ("0o600", "0o22")


def test_a_world_readable_var_dir_and_database_are_tightened(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    var.chmod(0o755)
    (var / "db.sqlite3").touch()
    (var / "db.sqlite3").chmod(0o644)
    result = run_manage(
        "shell", "-c", CREATE_DB, env={**PROD_ENV, "CONVAI_ADMIN_VAR_DIR": str(var)}
    )
    assert result.returncode == 0, result.stderr
    assert (_mode(var), _mode(var / "db.sqlite3")) == (0o700, 0o600)


def test_init_env_writes_an_owner_only_env_without_debug(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/init_env.py"), str(env_file)], check=True, timeout=60
    )
    assert _mode(env_file) == 0o600
    assert _mode(tmp_path / "var") == 0o700
    settings_lines = [line for line in env_file.read_text().splitlines() if "=" in line]
    assert not [line for line in settings_lines if line.startswith("DJANGO_DEBUG")]


# --- check --deploy (security finding 7) --------------------------------------------------


def test_deploy_check_warns_when_the_sandbox_is_on_without_debug() -> None:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**PROD_ENV, "CONVAI_SANDBOX": "1"}
    )
    assert result.returncode != 0
    assert "convai_admin.W001" in result.stderr + result.stdout
    assert "CONVAI_SANDBOX is on with DEBUG off" in result.stderr + result.stdout


# --- make run: DEBUG off, static collected, old databases explained (issue 6, section 5) ----


def test_make_run_serves_with_debug_off_collected_static_and_plain_http() -> None:
    result = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    script = result.stdout
    assert 'debug="${DJANGO_DEBUG:-0}"' in script  # off unless DJANGO_DEBUG=1 make run
    assert 'DJANGO_DEBUG="$debug" DJANGO_SECURE=0' in script  # after .env, so it wins
    order = [
        script.index("scripts/check_database.py"),
        script.index("manage.py migrate"),
        script.index("manage.py collectstatic --noinput"),
        script.index("manage.py runserver"),
    ]
    assert order == sorted(order)


def test_debug_off_serves_pages_and_collected_static_files(tmp_path: Path) -> None:
    """What `make run` does: collectstatic, then serve with DEBUG off through WhiteNoise."""
    env = {
        **PROD_ENV,
        "CONVAI_ADMIN_VAR_DIR": str(tmp_path),
        "DJANGO_SECURE": "0",
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    collected = run_manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    assert collected.returncode == 0, collected.stderr
    serve = (
        "import re; from django.test import Client; c = Client();"
        "r = c.get('/accounts/login/'); print(r.status_code);"
        'css = re.search(r\'href="(/static/css/app[^"]+)"\', r.content.decode()).group(1);'
        "print(css, c.get(css).status_code); print(c.get('/no-such-page/').status_code)"
    )
    served = run_manage("shell", "-c", serve, env=env)
    assert served.returncode == 0, served.stderr
    login, static, missing = served.stdout.strip().splitlines()[-3:]
    assert login == "200"
    css_url, css_status = static.split()
    assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", css_url)  # hashed, cacheable
    assert css_status == "200"
    assert missing == "404"


@pytest.fixture
def old_database(tmp_path: Path) -> Path:
    """A database made before the split: teams lived in the `accounts` app."""
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE django_migrations (id integer, app text, name text, applied text)")
        db.execute("INSERT INTO django_migrations VALUES (1, 'accounts', '0001_initial', '')")
        db.execute("CREATE TABLE accounts_team (id integer)")
    return path


def run_check_database(var: Path) -> subprocess.CompletedProcess[str]:
    # Without DATABASE_URL too: these tests are about the default SQLite file (CI's PostgreSQL
    # pass sets DATABASE_URL for the suite).
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CONVAI_", "DATABASE_URL"))
    }
    return subprocess.run(
        [sys.executable, "scripts/check_database.py"],
        cwd=ROOT,
        env={**base, **PROD_ENV, "CONVAI_ADMIN_VAR_DIR": str(var)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_database_from_before_the_split_is_explained_in_one_line(old_database: Path) -> None:
    result = run_check_database(old_database.parent)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"This database predates the teams/keys split; start fresh: rm {old_database} && make run"
    ]


def test_migration_rows_alone_are_enough_to_tell(old_database: Path) -> None:
    with sqlite3.connect(old_database) as db:
        db.execute("DROP TABLE accounts_team")
    assert run_check_database(old_database.parent).returncode == 1


@pytest.mark.parametrize("apps", [[], ["accounts", "teams", "keys"]], ids=["fresh", "current"])
def test_a_fresh_or_current_database_passes(tmp_path: Path, apps: list[str]) -> None:
    if apps:
        with sqlite3.connect(tmp_path / "db.sqlite3") as db:
            db.execute("CREATE TABLE django_migrations (id integer, app text, name text)")
            db.executemany(
                "INSERT INTO django_migrations VALUES (1, ?, '0001_initial')", [(a,) for a in apps]
            )
    result = run_check_database(tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
