"""`EMAIL_URL` → Django's email settings, through django-environ's parser (one variable for the
whole SMTP configuration, as DATABASE_URL is for the database).

    smtp://user:pass@mail.example.com:587/?tls=1   STARTTLS on 587
    smtp+ssl://user:pass@mail.example.com:465      TLS from the first byte (smtps:// too)
    console://                                     print mails on the terminal (make run)
    (unset)                                        no mail is sent; invitations are links only

Quote special characters of the user and password in the URL (`@` → `%40`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

# Shorter spellings than django-environ's, and smtps:// as people mean it: implicit TLS.
_ALIASES = {"console": "consolemail", "smtps": "smtp+ssl", "locmem": "memorymail"}
_TRUE = {"1", "true", "yes", "on"}
DISABLED_BACKEND = "django.core.mail.backends.dummy.EmailBackend"


@dataclass(frozen=True)
class MailSettings:
    backend: str
    host: str
    port: int
    user: str
    password: str
    use_tls: bool
    use_ssl: bool
    timeout: float
    enabled: bool  # False: no EMAIL_URL, so nothing is sent and pages say so


def mail_settings(url: str) -> MailSettings:
    url = url.strip()
    if not url:
        return MailSettings(DISABLED_BACKEND, "localhost", 25, "", "", False, False, 10.0, False)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ImproperlyConfigured("EMAIL_URL must look like smtp://user:password@host:587/?tls=1")
    scheme = _ALIASES.get(scheme.lower(), scheme.lower())
    try:
        config = environ.Env.email_url_config(f"{scheme}://{rest}")
    except ImproperlyConfigured as error:
        raise ImproperlyConfigured(
            f"EMAIL_URL: {error}. Use smtp://, smtp+ssl://, smtps:// or console://."
        ) from None
    query = {k.lower(): v[-1] for k, v in parse_qs(urlsplit(f"{scheme}://{rest}").query).items()}
    use_ssl = bool(config.get("EMAIL_USE_SSL")) or query.get("ssl", "").lower() in _TRUE
    use_tls = not use_ssl and (
        bool(config.get("EMAIL_USE_TLS")) or query.get("tls", "").lower() in _TRUE
    )
    smtp = config["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
    return MailSettings(
        backend=config["EMAIL_BACKEND"],
        host=config.get("EMAIL_HOST") or "localhost",
        port=config.get("EMAIL_PORT") or (465 if use_ssl else 587 if use_tls else 25),
        user=config.get("EMAIL_HOST_USER") or "",
        password=config.get("EMAIL_HOST_PASSWORD") or "",
        use_tls=use_tls and smtp,
        use_ssl=use_ssl and smtp,
        timeout=float(query.get("timeout", "10")),
        enabled=True,
    )
