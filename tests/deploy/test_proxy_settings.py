"""Behind a TLS-terminating proxy: the settings an operator sets (docs/production.md) pass
`manage.py check --deploy`, and X-Forwarded-Proto is believed only when proxies are named."""

from __future__ import annotations

from tests.support.manage import PROD_ENV, run_manage

BEHIND_PROXY = {
    **PROD_ENV,
    "DJANGO_ALLOWED_HOSTS": "admin.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://admin.example.com",
    "CONVAI_ADMIN_TRUSTED_PROXIES": "10.0.0.2,172.18.0.0/16",
}
SHOW = (
    "from django.conf import settings as s; "
    "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
    "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.DEBUG)"
)


def test_the_production_settings_behind_a_proxy_pass_the_deploy_check() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=BEHIND_PROXY)
    assert result.returncode == 0, result.stdout + result.stderr


def _shown(env: dict[str, str]) -> str:
    result = run_manage("shell", "-c", SHOW, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_forwarded_scheme_is_believed_only_with_trusted_proxies() -> None:
    # Forwarded scheme, https redirect, HSTS, secure cookies (session, CSRF), DEBUG.
    assert (
        _shown(BEHIND_PROXY) == "('HTTP_X_FORWARDED_PROTO', 'https') True 31536000 True True False"
    )
    assert _shown(PROD_ENV) == "None True 31536000 True True False"


def test_a_malformed_trusted_proxy_is_refused() -> None:
    result = run_manage(
        "check", env={**BEHIND_PROXY, "CONVAI_ADMIN_TRUSTED_PROXIES": "10.0.0.2,proxy.internal"}
    )
    assert result.returncode != 0
    assert "convai_admin.E001" in result.stderr and "proxy.internal" in result.stderr
