"""Convai Admin settings: one module, every value from the environment (12-factor).

Production-safe defaults: DEBUG off, HTTPS-only cookies, HSTS, strict CSP. A development
`.env` (written by `make run`) turns DEBUG and the sandbox on; it is never committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from convai_admin.mailconfig import mail_settings

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONVAI_ADMIN_VAR_DIR", BASE_DIR / "var"))
VERSION = "0.1.0"


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it in the environment (at least 50 random "
            "characters), or run `make run` once to generate a development .env."
        )
    SECRET_KEY = "insecure-development-only-" + "x" * 40

# Encryption keyring for stored Convai API keys: "kid:base64key,kid2:base64key".
# The first entry is the active key; older entries stay for decryption until rotated away.
ENCRYPTION_KEYS = os.environ.get("CONVAI_ADMIN_ENCRYPTION_KEYS", "")
if not ENCRYPTION_KEYS.strip() and not DEBUG:
    raise ImproperlyConfigured(
        "CONVAI_ADMIN_ENCRYPTION_KEYS is not set. It holds the keyring that encrypts stored "
        "Convai API keys, as 'keyid:base64-32-byte-key' entries separated by commas (first one "
        "active). Generate one with `python manage.py generate_encryption_key`."
    )

# The secret behind API key fingerprints (HMAC-SHA256, how "this key was already added" is
# found without decrypting every key). Defaults to SECRET_KEY. A dedicated value keeps the
# fingerprints valid when SECRET_KEY is rotated; after changing whichever one is used, run
# `manage.py fingerprint_api_keys --all`. Never the encryption keyring: that one rotates.
KEY_FINGERPRINT_SECRET = os.environ.get("CONVAI_ADMIN_KEY_FINGERPRINT_SECRET", "")

# Audit chain keys (HMAC-SHA256), never stored in the database: "kid:base64key,kid2:base64key",
# first entry seals new events, every entry verifies (rotation keeps old events verifiable).
# DEBUG without it: a key derived from SECRET_KEY, with a warning (audit.W001).
AUDIT_KEYS = os.environ.get("CONVAI_ADMIN_AUDIT_KEYS", "")
if not AUDIT_KEYS.strip() and not DEBUG:
    raise ImproperlyConfigured(
        "CONVAI_ADMIN_AUDIT_KEYS is not set. It holds the secret that seals the audit log's "
        "hash chain, as 'keyid:base64-32-byte-key' entries separated by commas (first one "
        "active). Generate one with `python manage.py generate_audit_key`."
    )
# A checkpoint (the chain heads, one line on logger "convai_admin.audit.checkpoint") every
# this many events per chain, and at least daily while events arrive.
AUDIT_CHECKPOINT_EVERY = int(os.environ.get("CONVAI_ADMIN_AUDIT_CHECKPOINT_EVERY", "1000"))

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# Proxies whose X-Forwarded-For we believe (comma-separated IPs). Empty: trust none.
TRUSTED_PROXIES = env_list("CONVAI_ADMIN_TRUSTED_PROXIES")

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",
    # Its runserver (read timeouts, convai_admin/server.py) must come before staticfiles'.
    "convai_admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "csp",
    "accounts",
    # django-allauth: sign-in, password reset, re-authentication (account), two-factor with TOTP,
    # recovery codes and passkeys (mfa), the member's own sessions (usersessions).
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "teams",
    "keys",
    "characters",
    "jobs",
    "audit",
    "review",
    "backups",
    "builds",
    "sandbox",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "convai_admin.middleware.RequestIDMiddleware",
    "audit.context.AuditContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads a POST's body: malformed, non-UTF-8 or too large
    # requests are refused on their headers alone (400/413).
    "convai_admin.middleware.RequestShapeMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # allauth: its sign-in stages and re-authentication redirects.
    "allauth.account.middleware.AccountMiddleware",
    # "Last seen" of each session on the Sessions page, written at most every few minutes.
    "accounts.middleware.SessionLastSeenMiddleware",
    "convai_admin.middleware.NoStoreForSignedInMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "convai_admin.middleware.VaryOnHtmxMiddleware",
    "convai_admin.middleware.HtmxRedirectMiddleware",
    "convai_admin.htmx.HtmxSignInMiddleware",
    "convai_admin.errors.DomainErrorMiddleware",
    "convai_admin.dbbusy.DatabaseBusyMiddleware",
]

ROOT_URLCONF = "convai_admin.urls"
WSGI_APPLICATION = "convai_admin.wsgi.application"
ASGI_APPLICATION = "convai_admin.asgi.application"

# A template asking teams.policy.Can for an answer it does not have (a typo) fails the page
# instead of reading as "no" (teams.policy.UnknownAnswer). On in tests and DEBUG; off in
# production, where a typo hides a control rather than breaking the page.
CONVAI_ADMIN_STRICT_PERMISSIONS = env_bool("CONVAI_ADMIN_STRICT_PERMISSIONS", DEBUG)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "teams.context_processors.navigation",
                "keys.context_processors.api_keys",
            ],
            "builtins": [
                "template_partials.templatetags.partials",
                "convai_admin.templatetags.display",
                "characters.templatetags.catalogue_names",
            ],
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        (
                            "django.template.loaders.cached.Loader",
                            [
                                "django.template.loaders.filesystem.Loader",
                                "django.template.loaders.app_directories.Loader",
                            ],
                        )
                    ],
                )
            ],
        },
    }
]

# var/ (the SQLite database, collected static files, bundle uploads) is made owner-only by
# convai_admin.apps.secure_var_dir when Django starts, before any connection opens.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite ignores SELECT ... FOR UPDATE: take the write lock when a transaction starts, so
    # two concurrent writers queue (up to the timeout) instead of failing with "locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No request or job waits long on a lock, and no session keeps a transaction (and the rows
    # it locked, such as a team's audit chain head) open while idle: a frozen or stuck process
    # loses its transaction after DB_IDLE_IN_TRANSACTION_TIMEOUT_MS; a request that waited
    # DB_LOCK_TIMEOUT_MS answers "busy, try again" (convai_admin/dbbusy.py). 0 turns one off.
    # `make run` gives the workers a longer lock timeout (DB_WORKER_LOCK_TIMEOUT_MS).
    DB_LOCK_TIMEOUT_MS = int(os.environ.get("DB_LOCK_TIMEOUT_MS", "5000"))
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = int(
        os.environ.get("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "60000")
    )
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = " ".join(
        filter(
            None,
            [
                str(_options.get("options", "")),
                f"-c lock_timeout={DB_LOCK_TIMEOUT_MS}",
                f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT_MS}",
            ],
        )
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    # allauth's backend: passkey (WebAuthn) sign-in without a password.
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "teams:home"
LOGOUT_REDIRECT_URL = "accounts:logged-out"  # "You are signed out"

# --- django-allauth (docs/accounts.md) -------------------------------------------------------
# Accounts come from invitations (teams) or `createsuperuser`: sign-up is closed
# (accounts.adapter.AccountAdapter.is_open_for_signup). People sign in with their username;
# a password reset is asked for by email address and mailed (EMAIL_* settings).
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = False
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False  # this device stays; the others end (accounts.views)
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False  # a link, whose key moves into the session
ACCOUNT_PREVENT_ENUMERATION = True  # "reset sent" whether or not the address is known
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False  # and no mail to an address without an account
ACCOUNT_SESSION_REMEMBER = None  # sessions end after SESSION_COOKIE_AGE, as before
ACCOUNT_FORMS = {
    "login": "accounts.forms.LoginForm",
    "change_password": "accounts.forms.PasswordChangeForm",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Convai Admin] "
# Re-authentication (accounts.reauth.reauthentication_required) lasts this long.
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
# Sign-in limits (accounts/limits.py): failed sign-ins per account lock it for 15 minutes (an
# Admin or Owner can unlock it on the Members page); per IP address, across usernames, a
# network is paused for the window (password spraying; 0 turns that limit off).
SIGN_IN_FAILURE_LIMIT = 5
SIGN_IN_COOLOFF_SECONDS = 15 * 60
LOGIN_IP_FAILURE_LIMIT = int(os.environ.get("CONVAI_ADMIN_LOGIN_IP_LIMIT", "50"))
LOGIN_IP_WINDOW_SECONDS = 60 * 60
# allauth's rate limits, counted in the cache (CACHES: the database, or Redis with REDIS_URL):
# shared by every process, kept across restarts. login_failed also counts wrong two-factor
# codes, per person.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    # Per IP, across usernames (left out when the limit is 0); per account (the username).
    "login_failed": ",".join(
        [f"{LOGIN_IP_FAILURE_LIMIT}/{LOGIN_IP_WINDOW_SECONDS}s/ip"] * (LOGIN_IP_FAILURE_LIMIT > 0)
        + [f"{SIGN_IN_FAILURE_LIMIT}/{SIGN_IN_COOLOFF_SECONDS}s/key"]
    ),
    "reset_password": "20/m/ip,3/15m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "10/m/user",
    "reauthenticate": "10/m/user",
    "signup": "20/m/ip",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_PASSKEY_SIGNUP_ENABLED = False
MFA_TOTP_ISSUER = "Convai Admin"
# A code from the period before or after is accepted too (clocks drift; typing takes time).
MFA_TOTP_TOLERANCE = 1
MFA_TOTP_PERIOD = 30
MFA_RECOVERY_CODE_COUNT = 10
# Passkeys are bound to the site's host name; plain http is accepted for localhost only (the
# browser itself refuses WebAuthn on any other insecure origin).
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG or env_bool("CONVAI_ADMIN_WEBAUTHN_INSECURE", False)
MFA_ADAPTER = "accounts.adapter.MFAAdapter"
MFA_FORMS = {"add_webauthn": "accounts.forms.AddPasskeyForm"}
# Off: allauth's tracking writes on every request. accounts.middleware keeps "last seen"
# instead, writing at most once per SESSION_LAST_SEEN_SECONDS per session.
USERSESSIONS_TRACK_ACTIVITY = False
SESSION_LAST_SEEN_SECONDS = 300

# Wrong current passwords at "Change password": limited like sign-in.
PASSWORD_CHANGE_FAILURE_LIMIT = SIGN_IN_FAILURE_LIMIT
PASSWORD_CHANGE_COOLOFF_SECONDS = SIGN_IN_COOLOFF_SECONDS

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 12
CSRF_COOKIE_HTTPONLY = True
SECURE = not DEBUG and env_bool("DJANGO_SECURE", True)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE and env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# The health probes answer over plain http too: a container's own health check and a load
# balancer's probe speak to the app server directly, not through the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "media-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or env_bool("CONVAI_ADMIN_PLAIN_STATIC")
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Shared by every web and worker process, so a second app server sees what the first one
# cached (the list's filter options, each key's voice and language catalogues): the database
# cache by default (its table is made by `migrate`: convai_admin.apps), Redis when REDIS_URL
# is set (redis://[:password@]host:6379/0). Nothing a request needs is kept in process memory.
CACHE_TABLE = "convai_admin_cache"
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
CACHES: dict[str, dict[str, object]] = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            # The oldest quarter is culled past this many entries (Django's default is 300).
            "OPTIONS": {"MAX_ENTRIES": 5000, "CULL_FREQUENCY": 4},
        }
    )
}

# --- Convai ---------------------------------------------------------------------------------
CONVAI_API_BASE_URL = os.environ.get("CONVAI_API_BASE_URL", "https://api.convai.com").rstrip("/")
CONVAI_CONNECT_TIMEOUT = float(os.environ.get("CONVAI_CONNECT_TIMEOUT", "5"))
CONVAI_READ_TIMEOUT = float(os.environ.get("CONVAI_READ_TIMEOUT", "20"))
CONVAI_READ_RETRIES = int(os.environ.get("CONVAI_READ_RETRIES", "2"))
# Base delay (seconds) of the exponential backoff between read retries.
CONVAI_RETRY_BACKOFF = float(os.environ.get("CONVAI_RETRY_BACKOFF", "0.5"))
CONVAI_CATALOGUE_CACHE_SECONDS = 60 * 60
# How long one request's Convai calls may take at most: a write, then a read-back with its
# retries. A save's claim on a character's version older than this (plus a margin) was
# interrupted (the server died) and may be taken over; a pending create, clone or delete that
# old is shown "Outcome unknown: check Convai".
CONVAI_REQUEST_SECONDS = float(
    os.environ.get(
        "CONVAI_REQUEST_SECONDS",
        str((CONVAI_CONNECT_TIMEOUT + CONVAI_READ_TIMEOUT) * (2 + CONVAI_READ_RETRIES)),
    )
)
CHARACTER_SAVE_CLAIM_SECONDS = float(
    os.environ.get("CHARACTER_SAVE_CLAIM_SECONDS", str(CONVAI_REQUEST_SECONDS + 30))
)
# characters.reconciliation.reconcile_pending_operations resolves creates, clones and deletes whose
# request died (pending this many seconds) by asking Convai; run it every
# CHARACTER_RECONCILE_INTERVAL seconds (jobs/periodic.py).
CHARACTER_RECONCILE_AFTER = float(os.environ.get("CHARACTER_RECONCILE_AFTER", "60"))
CHARACTER_RECONCILE_INTERVAL = int(os.environ.get("CHARACTER_RECONCILE_INTERVAL", "60"))
# The offline emulator of the Convai API, served under /sandbox/. Never on unless asked for.
CONVAI_SANDBOX = env_bool("CONVAI_SANDBOX", False)

# Background jobs (import all, sync all): Django's tasks API (the django-tasks backport) stored
# in the database (django-tasks-db); `manage.py db_worker` runs them (`make run` starts it).
# CONVAI_ADMIN_TASK_BACKEND=rq moves the queue to Redis (django-tasks-rq: RQ_REDIS_URL, else
# REDIS_URL), run by `manage.py rqworker` (deploy/entrypoint.sh worker); docs/production.md
# says what changes. Every job kind runs on either through the same tasks API.
TASK_BACKEND = os.environ.get("CONVAI_ADMIN_TASK_BACKEND", "database").strip().lower()
if TASK_BACKEND == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
elif TASK_BACKEND == "rq":
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {
        "default": {
            "URL": os.environ.get("RQ_REDIS_URL")
            or os.environ.get("REDIS_URL")
            or "redis://127.0.0.1:6379/0",
            # A job works in slices of JOB_SLICE_SECONDS; a periodic pass (the drift check)
            # may take minutes. RQ's default (180 s) would kill it.
            "DEFAULT_TIMEOUT": int(os.environ.get("RQ_JOB_TIMEOUT_SECONDS", "3600")),
        }
    }
else:
    raise ImproperlyConfigured(
        f"CONVAI_ADMIN_TASK_BACKEND must be 'database' (the default) or 'rq', not {TASK_BACKEND!r}."
    )
# Convai calls a job makes at once (a thread pool, one keep-alive session per thread).
# Game builds (docs/builds.md): the hourly cap on tokens all of a team's builds mint together,
# and how often expired minted tokens and old rate-limit windows are tidied away.
CONVAI_BUILD_TEAM_PER_HOUR = int(os.environ.get("CONVAI_BUILD_TEAM_PER_HOUR", "10000"))
CONVAI_BUILD_TIDY_SECONDS = int(os.environ.get("CONVAI_BUILD_TIDY_SECONDS", "600"))
CONVAI_JOB_CONCURRENCY = int(os.environ.get("CONVAI_JOB_CONCURRENCY", "8"))
# Retries of a job's reads (429 honouring Retry-After up to CONVAI_JOB_MAX_RETRY_WAIT seconds,
# 5xx and connection errors with backoff); writes are never retried.
CONVAI_JOB_READ_RETRIES = int(os.environ.get("CONVAI_JOB_READ_RETRIES", "4"))
CONVAI_JOB_MAX_RETRY_WAIT = float(os.environ.get("CONVAI_JOB_MAX_RETRY_WAIT", "60"))
# A running job whose worker has not written a heartbeat for this long is shown "interrupted"
# (the worker died) and can be resumed.
JOB_STALE_SECONDS = int(os.environ.get("JOB_STALE_SECONDS", "60"))
# Fairness: a job run works at most this many items or seconds, then queues itself again behind
# the other teams' jobs and frees its worker (docs/jobs.md).
JOB_SLICE_ITEMS = int(os.environ.get("JOB_SLICE_ITEMS", "200"))
JOB_SLICE_SECONDS = float(os.environ.get("JOB_SLICE_SECONDS", "10"))
# Periodic work (jobs/periodic.py, `manage.py run_scheduler`, started by `make run`): how often
# the scheduler looks for due functions, and how often the stale-job sweep runs.
SCHEDULER_TICK_SECONDS = float(os.environ.get("SCHEDULER_TICK_SECONDS", "5"))
JOB_SWEEP_SECONDS = float(os.environ.get("JOB_SWEEP_SECONDS", "30"))
# A task row (not a job's) still "running" after this long lost its worker: the sweep fails it.
TASK_STALE_SECONDS = int(os.environ.get("TASK_STALE_SECONDS", "3600"))
# Each worker process (`manage.py run_worker`) writes a heartbeat row this often; one not
# written for WORKER_STALE_SECONDS is a dead worker: /readyz counts only live ones, and the
# sweep fails the task rows a dead worker left "running" without waiting TASK_STALE_SECONDS.
WORKER_HEARTBEAT_SECONDS = float(os.environ.get("WORKER_HEARTBEAT_SECONDS", "10"))
WORKER_STALE_SECONDS = int(os.environ.get("WORKER_STALE_SECONDS", "60"))

# Drift that shows itself (characters.drift.check_drift, run by the periodic scheduler): every
# this many minutes each usable key's characters are compared with Convai (0 = never).
CONVAI_ADMIN_DRIFT_CHECK_MINUTES = int(os.environ.get("CONVAI_ADMIN_DRIFT_CHECK_MINUTES", "30"))
# Per key and pass, besides its one `list`: at most this many `get`s (never more than the
# key's core-API quota left), first for characters whose list item differs, then...
CONVAI_ADMIN_DRIFT_GETS_PER_KEY = int(os.environ.get("CONVAI_ADMIN_DRIFT_GETS_PER_KEY", "10"))
# ...this many of the unchanged ones, least recently read first, for the backstory (a list
# item has none): a backstory-only edit in Convai shows within (characters / this) passes.
CONVAI_ADMIN_DRIFT_SAMPLE_PER_KEY = int(os.environ.get("CONVAI_ADMIN_DRIFT_SAMPLE_PER_KEY", "2"))

# A key's account usage (plan, quota) refreshes by itself when older than this: the periodic
# pass keys.services.refresh_stale_usage (run every CONVAI_USAGE_REFRESH_INTERVAL_SECONDS)
# refreshes at most CONVAI_USAGE_REFRESH_BATCH keys, oldest first; a job's keys are also
# refreshed when it ends (keys.services.refresh_usage_after_job).
CONVAI_USAGE_MAX_AGE_SECONDS = int(os.environ.get("CONVAI_USAGE_MAX_AGE_SECONDS", "3600"))
CONVAI_USAGE_REFRESH_INTERVAL_SECONDS = int(
    os.environ.get("CONVAI_USAGE_REFRESH_INTERVAL_SECONDS", "300")
)
CONVAI_USAGE_REFRESH_BATCH = int(os.environ.get("CONVAI_USAGE_REFRESH_BATCH", "50"))

# Bundles (docs/bundles.md): the largest file; the space, lifetime and rate of uploads waiting
# in VAR_DIR/bundles/ for their import; how often the periodic prune of expired ones runs.
CONVAI_BUNDLE_MAX_BYTES = int(os.environ.get("CONVAI_BUNDLE_MAX_BYTES", str(20 * 1024 * 1024)))
CONVAI_BUNDLE_STORAGE_MAX_BYTES = int(
    os.environ.get("CONVAI_BUNDLE_STORAGE_MAX_BYTES", str(200 * 1024 * 1024))
)
CONVAI_BUNDLE_UPLOAD_TTL_SECONDS = int(os.environ.get("CONVAI_BUNDLE_UPLOAD_TTL_SECONDS", "86400"))
CONVAI_BUNDLE_UPLOADS_PER_WINDOW = int(os.environ.get("CONVAI_BUNDLE_UPLOADS_PER_WINDOW", "10"))
CONVAI_BUNDLE_UPLOAD_WINDOW_SECONDS = int(
    os.environ.get("CONVAI_BUNDLE_UPLOAD_WINDOW_SECONDS", "600")
)
CONVAI_BUNDLE_PRUNE_INTERVAL_SECONDS = int(
    os.environ.get("CONVAI_BUNDLE_PRUNE_INTERVAL_SECONDS", "3600")
)

INVITATION_VALID_DAYS = 7

# Who may create teams: "admins" (the install's staff and superusers; everyone else joins by
# invitation) or "anyone" signed in.
TEAM_CREATION = os.environ.get("TEAM_CREATION", "anyone").strip().lower()
if TEAM_CREATION not in {"admins", "anyone"}:
    raise ImproperlyConfigured("TEAM_CREATION must be 'admins' or 'anyone'.")

# --- Email ------------------------------------------------------------------------------------
# One variable, EMAIL_URL (convai_admin/mailconfig.py: smtp://user:pass@host:587/?tls=1,
# smtps://…, console://). Unset: nothing is sent and invitations are shared as links only.
_mail = mail_settings(os.environ.get("EMAIL_URL", ""))
EMAIL_ENABLED = _mail.enabled
EMAIL_BACKEND = _mail.backend
EMAIL_HOST = _mail.host
EMAIL_PORT = _mail.port
EMAIL_HOST_USER = _mail.user
EMAIL_HOST_PASSWORD = _mail.password
EMAIL_USE_TLS = _mail.use_tls
EMAIL_USE_SSL = _mail.use_ssl
EMAIL_TIMEOUT = _mail.timeout
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Convai Admin <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
del _mail
# Backups (docs/backup.md): where pg_dump and pg_restore are, when not on PATH or under
# /usr/lib/postgresql/*/bin (the newest there is taken).
BACKUP_PG_BIN_DIR = os.environ.get("CONVAI_ADMIN_PG_BIN_DIR", "")

# --- Request sizes ----------------------------------------------------------------------------
# A request announcing a larger body (Content-Length) is refused with 413 before anything reads
# it. Most pages take at most Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB: the largest form,
# a 10,000-character backstory, is far below); an upload page takes its file's limit (the
# setting REQUEST_UPLOAD_LIMITS names, by URL name) plus 64 KB for the rest of the form.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# `make run`'s server (runserver, convai_admin/server.py) waits at most this many seconds for
# each read from a client (its request, the rest of its body, its next request on a kept-alive
# connection) before closing the connection and freeing the thread.
REQUEST_READ_TIMEOUT = float(os.environ.get("CONVAI_ADMIN_REQUEST_READ_TIMEOUT", "30"))
# The bundle import page takes CONVAI_BUNDLE_MAX_BYTES (above; bundles' schema.max_bytes()).
REQUEST_UPLOAD_LIMITS = {"bundles:import": "CONVAI_BUNDLE_MAX_BYTES"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "convai_admin.middleware.RequestIDLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "convai_admin.convai": {"level": os.environ.get("CONVAI_LOG_LEVEL", "INFO")},
        # Checkpoints must reach the log whatever DJANGO_LOG_LEVEL says: they are the copy of
        # the chain heads kept outside the database.
        "convai_admin.audit.checkpoint": {"level": "INFO"},
    },
}
