"""What can be checked of the container image and the app server's configuration without a
container runtime (none runs here): the Dockerfile parsed for its promises, compose.yaml for
its services, deploy/gunicorn.conf.py loaded as gunicorn loads it, the health probe's Host."""

from __future__ import annotations

import os
import re
import runpy
from typing import Any

import pytest

from tests.support.manage import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    """The arguments of each `NAME ...` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1]
        for line in joined.splitlines()
        if line.strip() and line.split(None, 1)[0].upper() == name
    ]


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = _instructions("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0


def test_the_base_image_is_pinned_to_a_release() -> None:
    for base in _instructions("FROM"):
        image = base.split()[0]
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+-", image), image
        assert not image.endswith(":latest")


def test_the_health_check_runs_the_standard_library_probe() -> None:
    (check,) = _instructions("HEALTHCHECK")
    assert '"/app/deploy/healthcheck.py"' in check and "--interval=" in check
    assert (ROOT / "deploy" / "healthcheck.py").exists()


def test_one_image_for_every_role_through_the_entrypoint() -> None:
    assert _instructions("ENTRYPOINT") == ['["/app/deploy/entrypoint.sh"]']
    assert _instructions("CMD") == ['["all"]']
    assert os.access(ROOT / "deploy" / "entrypoint.sh", os.X_OK)


def test_dependencies_come_pinned_from_requirements() -> None:
    (install,) = [run for run in _instructions("RUN") if "pip install" in run]
    assert "-r /tmp/requirements.txt" in install
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, line


def test_secrets_and_local_state_stay_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".env.*", "var", ".git", ".venv"} <= set(ignored)


def test_compose_runs_every_role_of_one_image_on_postgresql() -> None:
    """Read as text (no YAML parser among the dependencies): each role a service of the one
    image, PostgreSQL, Redis optional, the web port on loopback only (the TLS proxy's)."""
    compose = (ROOT / "compose.yaml").read_text()
    for role in ("migrate", "web", "worker", "scheduler"):
        assert re.search(rf"\n  {role}:\n    <<: \*app\n    command: \[\"{role}\"\]", compose)
    assert "condition: service_completed_successfully" in compose
    assert "DATABASE_URL: postgres://" in compose and "image: postgres:" in compose
    assert 'profiles: ["redis"]' in compose
    assert "- var:/var/lib/convai-admin" in compose  # bundle uploads, shared by every role
    assert '- "127.0.0.1:8000:8000"' in compose


def _gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in list(os.environ):
        if name.startswith("WEB_") or name == "CONVAI_ADMIN_TRUSTED_PROXIES":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))


def test_gunicorn_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _gunicorn_config(monkeypatch)
    assert config["wsgi_app"] == "convai_admin.wsgi:application"
    assert config["bind"] == ["127.0.0.1:8000"]
    assert (config["workers"], config["threads"], config["worker_class"]) == (2, 4, "gthread")
    assert config["max_requests"] == 1000 and config["max_requests_jitter"] == 100
    assert config["forwarded_allow_ips"] == ""  # nobody's X-Forwarded-* is believed
    assert config["control_socket_disable"] is True


def test_gunicorn_takes_its_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _gunicorn_config(
        monkeypatch,
        WEB_BIND="0.0.0.0:9000",
        WEB_WORKERS="5",
        WEB_THREADS="8",
        WEB_TIMEOUT="200",
        CONVAI_ADMIN_TRUSTED_PROXIES="10.0.0.2,172.18.0.0/16",
    )
    assert config["bind"] == ["0.0.0.0:9000"]
    assert (config["workers"], config["threads"], config["timeout"]) == (5, 8, 200)
    assert config["forwarded_allow_ips"] == "10.0.0.2,172.18.0.0/16"


def test_the_worker_timeout_outlasts_a_request_to_convai(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings

    assert _gunicorn_config(monkeypatch)["timeout"] > settings.CONVAI_REQUEST_SECONDS


def test_the_access_log_has_no_query_string_nor_referer(monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = _gunicorn_config(monkeypatch)["access_log_format"]
    assert "%(U)s" in fmt  # the path
    for leaky in ("%(r)s", "%(q)s", "%(f)s", "%({referer}i)s"):
        assert leaky not in fmt


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("admin.example.com,localhost", "admin.example.com"),
        (".example.com", "example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_the_probe_asks_for_a_host_the_app_serves(
    monkeypatch: pytest.MonkeyPatch, allowed: str, host: str
) -> None:
    probe = runpy.run_path(str(ROOT / "deploy" / "healthcheck.py"))
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", allowed)
    assert probe["probe_host"]() == host
