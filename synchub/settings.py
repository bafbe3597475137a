"""Settings for Customer Sync Hub.

Every value comes from the environment (or a `.env` file beside manage.py) through
django-environ; `.env.example` lists each variable with its meaning.
"""

from datetime import timedelta
from pathlib import Path

import environ
import xstatic.pkg.bootstrap
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
# A published key lets anyone forge sessions, password-reset links and signed values, so with
# DEBUG off the hub does not start without a key of its own (`make run` writes one into .env).
# With DEBUG on, a fixed development key keeps sessions across restarts.
DEVELOPMENT_SECRET_KEY = "insecure-development-key-change-me"
if not DEBUG and SECRET_KEY.strip() in ("", DEVELOPMENT_SECRET_KEY, "change-me"):
    raise ImproperlyConfigured(
        "SECRET_KEY is not set (or is a published placeholder) and DEBUG is off. Set SECRET_KEY in the "
        "environment or in .env to a long random string, for example the output of "
        '`python -c "import secrets; print(secrets.token_urlsafe(64))"`.'
    )
SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "polymorphic",
    "django_countries",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
]
LOCAL_APPS = [
    "catalog",
    "sync",
    "integrations.stripe",
    "integrations.webhooks",
    "console",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below; synchub/csp.py).
    "synchub.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who makes a change, for the audit trail (sync/origin.py).
    "sync.origin.ChangeOriginMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "synchub.urls"
WSGI_APPLICATION = "synchub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Every request runs in one transaction, so a change and its outbox event commit together.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the relay and the workers write to one SQLite file at once:
    # WAL lets readers run beside a writer, IMMEDIATE takes the write lock up front
    # (no deadlocked lock upgrades) and the timeout makes writers queue instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": env.float("SQLITE_BUSY_TIMEOUT_SECONDS", default=20.0),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: every login form (console, admin, the browsable API's) goes through
# authenticate(), which axes refuses while the username + address pair is locked out.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "synchub.permissions.PermissionsBackend",
]
# Lock a username + client address pair out after this many failed logins, for this long;
# operators unlock with `manage.py axes_reset_username USER` (or the admin's access attempts).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "console/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# Failures and lockouts are logged as warnings; without this, every login adds an INFO line too.
AXES_VERBOSE = False
# Throttles (API) and lockouts read and write this cache. The default is per process: with
# several web workers a client may reach each one's limit; give production a shared cache
# (e.g. redis://host:6379/1) for exact limits.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Front-end assets come from PyPI packages (no CDN): the staff console must work offline.
STATICFILES_DIRS = [
    ("bootstrap/css", Path(xstatic.pkg.bootstrap.BASE_DIR) / "css"),
    ("bootstrap/js", Path(xstatic.pkg.bootstrap.BASE_DIR) / "js"),
]
# In development, serve static files straight from the apps, without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG

# The staff console's login (staff accounts only); the admin keeps its own at /admin/login/.
# Every open dashboard refreshes every 3 s, and its per-type sync counts read the whole catalog:
# they are counted once per this many seconds for all viewers (through the cache). 0: each view.
CONSOLE_COUNTS_CACHE_SECONDS = env.float("CONSOLE_COUNTS_CACHE_SECONDS", default=2.0)
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:dashboard"
LOGOUT_REDIRECT_URL = "console:login"

REST_FRAMEWORK = {
    # Token first, so an unauthenticated request gets 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "synchub.throttling.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Logged in, and holding the model's permission for the request (reads need "view"):
    # synchub/permissions.py, README "Security".
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "synchub.permissions.ModelPermissions",
    ],
    "DEFAULT_PAGINATION_CLASS": "synchub.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON only: nested fields (address, metadata, bulk rows) cannot be sent as form fields, so the
    # schema offers no form encodings; the parser turns too deep nesting and lone surrogates into 400s.
    "DEFAULT_PARSER_CLASSES": ["synchub.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "synchub.api.exception_handler",
    # Requests per client address (anonymous) or user; failed token checks per address. 429 with
    # Retry-After above them. The webhook is a plain Django view: bounded by its size limit instead.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    # An empty rate turns that throttle off (the load tests' hubs).
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/min") or None,
        "user": env("API_THROTTLE_USER", default="1200/min") or None,
        "failed_auth": env("API_THROTTLE_FAILED_AUTH", default="20/min") or None,
    },
}

# /api/schema and /docs answer signed-in users only (session or token), unless this makes them public.
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=False)

SPECTACULAR_SETTINGS = {
    "TITLE": "Customer Sync Hub API",
    "DESCRIPTION": "Local customer catalog kept in two-way sync with Stripe.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": [
        "rest_framework.permissions.AllowAny" if API_DOCS_PUBLIC else "rest_framework.permissions.IsAuthenticated"
    ],
    # Request bodies get components of their own (CustomerRequest...): what is sent and what is
    # answered differ (read-only fields; emails: ASCII sent, any answered), and each is told.
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "SyncStatusEnum": "catalog.models.SyncStatus",
        "BulkRowStatusEnum": ["created", "updated", "error"],
    },
    # Integrations' webhooks are plain Django views; each documents its own endpoint through
    # its contract (sync/integrations.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sync.integrations.document_integrations",
        "synchub.openapi.document_error_responses",
    ],
}

# JSON lines (one object per record) for log collectors, or plain text for a terminal.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "synchub.logging.RedactSecretsFilter"}},
    "formatters": {
        "plain": {"()": "synchub.logging.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "synchub.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "kafka": {"level": env("KAFKA_LOG_LEVEL", default="WARNING")},
        # The stripe library logs two INFO lines per API call; the audit trail and the request
        # metrics already record every call, so only its warnings are kept.
        "stripe": {"level": env("STRIPE_LOG_LEVEL", default="WARNING")},
    },
}

# --- HTTPS and cookies (production defaults whenever DEBUG is off; `manage.py check --deploy`) ---
# Plain-HTTP setups (the local sandbox, docker compose without a TLS proxy) turn these off.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers and Prometheus call these over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Content-Security-Policy (django-csp; README "Safe defaults") -------------------------------
# Every page runs only our own static scripts and styles: no inline script anywhere, no plugins,
# no framing, forms post only here.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Bootstrap's select arrows and Swagger UI's icons are data: SVG images.
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- Kafka -----------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env.list("KAFKA_BOOTSTRAP_SERVERS", default=["127.0.0.1:9092"])
# Empty: negotiate with the broker (right for Apache Kafka). "2.5.0" for the Tansu sandbox broker.
KAFKA_API_VERSION = env("KAFKA_API_VERSION", default="")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=3)
KAFKA_REPLICATION_FACTOR = env.int("KAFKA_REPLICATION_FACTOR", default=1)
KAFKA_REQUEST_TIMEOUT_MS = env.int("KAFKA_REQUEST_TIMEOUT_MS", default=10000)
KAFKA_MAX_POLL_INTERVAL_MS = env.int("KAFKA_MAX_POLL_INTERVAL_MS", default=300000)
KAFKA_SESSION_TIMEOUT_MS = env.int("KAFKA_SESSION_TIMEOUT_MS", default=10000)
KAFKA_HEARTBEAT_INTERVAL_MS = env.int("KAFKA_HEARTBEAT_INTERVAL_MS", default=3000)
KAFKA_MAX_POLL_RECORDS = env.int("KAFKA_MAX_POLL_RECORDS", default=100)
KAFKA_PRODUCER_LINGER_MS = env.int("KAFKA_PRODUCER_LINGER_MS", default=0)
# How long a publish (webhook intake, relay, retries) waits for the broker's acknowledgement.
KAFKA_PUBLISH_TIMEOUT_SECONDS = env.float("KAFKA_PUBLISH_TIMEOUT_SECONDS", default=5.0)

# --- Task layer, outbox --------------------------------------------------------------------
SYNC_TASK_MAX_ATTEMPTS = env.int("SYNC_TASK_MAX_ATTEMPTS", default=6)
SYNC_RETRY_BACKOFF_SECONDS = env.float("SYNC_RETRY_BACKOFF_SECONDS", default=2.0)
SYNC_RETRY_BACKOFF_MAX_SECONDS = env.float("SYNC_RETRY_BACKOFF_MAX_SECONDS", default=600.0)
# How long a task may wait for something else under way (sync.tasks.RetryLater: an invoice for
# its customer's first push) before its waits count as failed attempts.
SYNC_WAIT_MAX_SECONDS = env.float("SYNC_WAIT_MAX_SECONDS", default=86400.0)
SYNC_WORKER_MAX_CONSECUTIVE_ERRORS = env.int("SYNC_WORKER_MAX_CONSECUTIVE_ERRORS", default=20)
# Messages of one task a worker hands its batch handler at once (at most one per key).
SYNC_WORKER_BATCH_SIZE = env.int("SYNC_WORKER_BATCH_SIZE", default=100)
# The relay's idle poll: half of it is added, on average, to every change's way to Kafka; an idle
# poll is one indexed query (~50 a second).
OUTBOX_POLL_INTERVAL_SECONDS = env.float("OUTBOX_POLL_INTERVAL_SECONDS", default=0.02)
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=500)
OUTBOX_RETENTION_SECONDS = env.int("OUTBOX_RETENTION_SECONDS", default=3600)
# Deleted items are remembered this many days, so late webhooks (Stripe retries for 3 days),
# catch-ups and reconciles never bring them back.
SYNC_TOMBSTONE_RETENTION = env.float("SYNC_TOMBSTONE_RETENTION", default=7)
# Largest record the hub hands Kafka (librdkafka refuses more than its message.max.bytes,
# 1,000,000 by default): a larger outbox row is dead-lettered instead of blocking the relay.
KAFKA_MAX_RECORD_BYTES = env.int("KAFKA_MAX_RECORD_BYTES", default=1_000_000)
# Largest webhook body accepted (413 above it): well below KAFKA_MAX_RECORD_BYTES, so every
# accepted event fits in a task message. Stripe's own events are a few kB.
WEBHOOK_MAX_BYTES = env.int("WEBHOOK_MAX_BYTES", default=256 * 1024)
# Each /health check (database, Kafka, Stripe) gives up after this long.
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=2.0)
# /health gives each check's result (and error) to callers presenting this token, as it does to
# staff; anyone else gets the status only. Empty: no token is accepted.
HEALTH_TOKEN = env("HEALTH_TOKEN", default="")
# Audit trail rows (sync events) older than this are pruned by the relay.
SYNC_EVENT_RETENTION_DAYS = env.float("SYNC_EVENT_RETENTION_DAYS", default=30)
# The relay samples the outbox backlog and every consumer group's lag this often, for the
# dashboard's "is it keeping up?" chart, and keeps the samples this long.
SYNC_BACKLOG_SAMPLE_SECONDS = env.float("SYNC_BACKLOG_SAMPLE_SECONDS", default=15)
SYNC_BACKLOG_RETENTION_SECONDS = env.int("SYNC_BACKLOG_RETENTION_SECONDS", default=7200)
# Handled external events are remembered by id this many days (then only each object's newest
# event and its deletions are kept, by which a late one is still known stale): longer than
# Stripe's 30 days of listable events (the catch-up) and its 3 days of webhook retries.
SYNC_INBOX_RETENTION_DAYS = env.float("SYNC_INBOX_RETENTION_DAYS", default=35)

# --- Stripe --------------------------------------------------------------------------------
STRIPE_API_KEY = env("STRIPE_API_KEY", default="")
# Empty: the real Stripe API. Set to an emulator's address (localstripe) for the sandbox and tests.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
# Comma-separated: during a rotation both the old and the new signing secret are accepted.
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# Pins the API version of every Stripe call (empty: the account's default version).
STRIPE_API_VERSION = env("STRIPE_API_VERSION", default="")
# Which customer fields sync with Stripe, and which way (README "Field map"); empty: every field both ways.
STRIPE_FIELD_MAP = env("STRIPE_FIELD_MAP", default="")
# Catch-up from Stripe's Events API (manage.py run_stripe_catchup): how often it reads, how far
# back it re-reads behind the newest event seen, and how far back it starts with none seen.
STRIPE_CATCHUP_INTERVAL_SECONDS = env.float("STRIPE_CATCHUP_INTERVAL_SECONDS", default=20)
STRIPE_CATCHUP_OVERLAP_SECONDS = env.int("STRIPE_CATCHUP_OVERLAP_SECONDS", default=600)
STRIPE_CATCHUP_INITIAL_LOOKBACK_SECONDS = env.int("STRIPE_CATCHUP_INITIAL_LOOKBACK_SECONDS", default=3600)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=20.0)
# Stripe calls one worker process makes at once: their network latency overlaps (one at a time,
# ~200 ms each, would cap a worker at ~5 changes/s against the real API).
STRIPE_WORKER_CONCURRENCY = env.int("STRIPE_WORKER_CONCURRENCY", default=8)
# Client-side limit on Stripe API requests per second, per process (0 = unlimited); see
# sync/ratelimit.py. Stripe allows about 100/s in live mode and 25/s in test mode.
STRIPE_RATE_LIMIT_PER_SECOND = env.float("STRIPE_RATE_LIMIT_PER_SECOND", default=0)
# Stripe reads of `manage.py sync_reconcile` per second (Stripe allows about 25/s with test keys).
STRIPE_RECONCILE_RATE_LIMIT_PER_SECOND = env.float("STRIPE_RECONCILE_RATE_LIMIT_PER_SECOND", default=25)

# --- Standard Webhooks endpoints (integrations/webhooks) ------------------------------------
# Seconds between a failed delivery and its next attempt, one per retry: the specification's
# recommended schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); after the last, a dead letter.
WEBHOOKS_RETRY_SCHEDULE = [
    float(value)
    for value in env.list("WEBHOOKS_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"])
]
# An endpoint failing every delivery for this long is disabled (and its queue dead-lettered).
WEBHOOKS_DISABLE_AFTER_SECONDS = env.float("WEBHOOKS_DISABLE_AFTER_SECONDS", default=5 * 24 * 3600)
# How long an endpoint's system may answer; past it the attempt failed.
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
# Deliveries in flight at once, and at most per endpoint (a slow one cannot take them all).
WEBHOOKS_CONCURRENCY = env.int("WEBHOOKS_CONCURRENCY", default=8)
WEBHOOKS_PER_ENDPOINT_CONCURRENCY = env.int("WEBHOOKS_PER_ENDPOINT_CONCURRENCY", default=2)
# After a secret rotation, the old secret still signs and verifies for this long.
WEBHOOKS_SECRET_GRACE_SECONDS = env.float("WEBHOOKS_SECRET_GRACE_SECONDS", default=24 * 3600)
# Endpoint URLs on loopback, private or link-local addresses are refused (no requests into the
# hub's own network), unless this allows them (tests and the sandbox, all on 127.0.0.1).
WEBHOOKS_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKS_ALLOW_PRIVATE_URLS", default=False)
# Whether any endpoint is enabled is asked at every catalog change and kept this long per process
# (with none, changes are not enqueued for webhooks at all): an endpoint created or enabled hears
# of changes from at most this long after.
WEBHOOKS_ACTIVE_CACHE_SECONDS = env.float("WEBHOOKS_ACTIVE_CACHE_SECONDS", default=1.0)
# Delivered messages (with their attempts) and received message ids are kept this long: a
# message id is known as a replay for as long.
WEBHOOKS_RETENTION_DAYS = env.float("WEBHOOKS_RETENTION_DAYS", default=30)
