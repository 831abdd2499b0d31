"""Settings shared by every environment; every value that differs between machines comes from the environment.

With nothing configured the project runs on a SQLite file, a local-memory cache and eager Celery, so a fresh
laptop needs no services. `DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to Redis for the cache and as the
Celery broker (see `.env.example`).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
ADMINS = [tuple(item.split(":", 1)) for item in env.list("ADMINS", default=[]) if ":" in item]
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "jewelia.core",
    "orders",
    "apikeys",
    "integrations",
    "webhooks",
]

MIDDLEWARE = [
    "jewelia.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "jewelia.core.middleware.ApiBodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jewelia.urls"
WSGI_APPLICATION = "jewelia.wsgi.application"
ASGI_APPLICATION = "jewelia.asgi.application"

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

# --- Database -------------------------------------------------------------------------------------------------
# PostgreSQL through psycopg 3 when DATABASE_URL is set; a SQLite file otherwise.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'jewelia.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USING_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# Covering indexes and unique constraints with INCLUDE columns are PostgreSQL speed-ups; SQLite builds them without
# the extra columns, which is right for the small local database, so its warnings about that are only noise.
SILENCED_SYSTEM_CHECKS = [] if USING_POSTGRES else ["models.W039", "models.W040"]

# --- Cache and Celery -----------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "jewelia"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=14 * 60)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"integrations.*": {"queue": "integrations"}, "webhooks.*": {"queue": "webhooks"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Auth, i18n, static -----------------------------------------------------------------------------------------
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
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
LOGIN_URL = "/admin/login/"

# --- Email (alerts go to ADMINS) ----------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="jewelia@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- API ---------------------------------------------------------------------------------------------------------
# Bodies larger than this get 413 before they are read (webhooks have their own limit).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apikeys.permissions.ScopedPermission"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "jewelia.core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jewelia.core.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Jewelia integrations API",
    "DESCRIPTION": (
        "REST API of the Jewelia CRM back office. Authenticate with an API key "
        "(`Authorization: Bearer jwl_...` or `X-API-Key`) or a staff session. Every error has the shape "
        '`{"error": {"code", "message", "details", "request_id"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # One named component per choice set, so generated clients get stable enum names.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "PaymentStatusEnum": "orders.models.PaymentStatus",
        "FulfillmentStatusEnum": "orders.models.FulfillmentStatus",
        "PaymentRecordStatusEnum": "orders.models.PaymentRecordStatus",
        "ShipmentStatusEnum": "orders.models.ShipmentStatus",
        "ProductCategoryEnum": "orders.models.ProductCategory",
        "ChannelEnum": "orders.models.Channel",
        "IntegrationStatusEnum": "integrations.models.IntegrationStatus",
        "HealthStatusEnum": "integrations.models.HealthStatus",
        "SyncRunStatusEnum": "integrations.models.SyncRunStatus",
        "OutboxStatusEnum": "integrations.models.OutboxStatus",
        "WebhookEventStatusEnum": "webhooks.models.WebhookEventStatus",
        "ApiKeyStatusEnum": "apikeys.models.KeyStatus",
        "ProviderCategoryEnum": "integrations.providers.base.Category",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jewelia.core.openapi.add_error_responses",
    ],
}

# --- Logging: one line per event, with the request id --------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "jewelia.core.logging.RequestIdFilter"}},
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "celery": {"level": "INFO"},
    },
}

# --- Periodic tasks (django-celery-beat loads these into its tables on start; staff can pause them in admin) ------
CELERY_BEAT_SCHEDULE: dict = {}

# --- orders -------------------------------------------------------------------------------------------------------
# Stats rollups: marked days are recomputed this often (until then the stats aggregate them live, so they stay exact);
# reconcile marks days changed by writers that forgot to mark them.
ORDERS_STATS_REFRESH_SECONDS = env.int("ORDERS_STATS_REFRESH_SECONDS", default=60)
ORDERS_STATS_RECONCILE_SECONDS = env.int("ORDERS_STATS_RECONCILE_SECONDS", default=3600)
CELERY_BEAT_SCHEDULE["orders.stats_refresh"] = {
    "task": "orders.stats_refresh",
    "schedule": float(ORDERS_STATS_REFRESH_SECONDS),
}
CELERY_BEAT_SCHEDULE["orders.stats_reconcile"] = {
    "task": "orders.stats_reconcile",
    "schedule": float(ORDERS_STATS_RECONCILE_SECONDS),
}

# --- apikeys ------------------------------------------------------------------------------------------------------
# HMAC key for API-key hashes. Unset: derived from SECRET_KEY, so changing SECRET_KEY then invalidates every key.
APIKEYS_PEPPER = env.str("APIKEYS_PEPPER", default="")
APIKEYS_DEFAULT_RATE_LIMIT = env.int("APIKEYS_DEFAULT_RATE_LIMIT", default=600)  # requests per minute per key
APIKEYS_MAX_LIFETIME_DAYS = env.int("APIKEYS_MAX_LIFETIME_DAYS", default=365)  # 0: keys may never expire
APIKEYS_EXPIRY_NOTICE_DAYS = env.int("APIKEYS_EXPIRY_NOTICE_DAYS", default=7)
APIKEYS_USAGE_FLUSH_SECONDS = env.int("APIKEYS_USAGE_FLUSH_SECONDS", default=60)
APIKEYS_KEY_CACHE_SECONDS = env.int("APIKEYS_KEY_CACHE_SECONDS", default=60)
APIKEYS_TRUSTED_PROXY_COUNT = env.int("APIKEYS_TRUSTED_PROXY_COUNT", default=0)  # proxies adding X-Forwarded-For
# Counts each API-key request and its outcome; only middleware sees the final status of every response.
MIDDLEWARE = [*MIDDLEWARE, "apikeys.middleware.ApiKeyUsageMiddleware"]
CELERY_BEAT_SCHEDULE["apikeys.flush_usage"] = {
    "task": "apikeys.flush_usage",
    "schedule": float(APIKEYS_USAGE_FLUSH_SECONDS),
}
CELERY_BEAT_SCHEDULE["apikeys.notify_expiring"] = {"task": "apikeys.notify_expiring", "schedule": 3600.0}

# --- integrations -------------------------------------------------------------------------------------------------
# QuickBooks Online (integrations.providers.quickbooks): the Intuit app's OAuth client id and secret
# (developer.intuit.com > Keys & credentials; development keys for sandbox companies).
QUICKBOOKS_CLIENT_ID = env.str("QUICKBOOKS_CLIENT_ID", default="")
QUICKBOOKS_CLIENT_SECRET = env.str("QUICKBOOKS_CLIENT_SECRET", default="")
# The Intuit app's webhook verifier token(s) (developer portal > Webhooks > Show token; not the client secret), for
# the app-level receiver POST /api/webhooks/providers/quickbooks/: the current one first, then the one it replaced
# while both may sign. Empty: every app-level delivery is refused (401).
QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = env.list("QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS", default=[])
# Token-response fields stating the refresh token's hard expiry: Intuit announced one (Nov 2025) but its name is
# unconfirmed. A number is seconds from now, a string an ISO time. Empty: only x_refresh_token_expires_in is read.
QUICKBOOKS_REFRESH_TOKEN_EXPIRY_FIELDS = env.list("QUICKBOOKS_REFRESH_TOKEN_EXPIRY_FIELDS", default=[])
# Provider HTTP (integrations.http): per-call timeouts, attempts per call, and the longest a worker sleeps
# in-process per call before the retry goes to the database schedule instead.
INTEGRATIONS_HTTP_CONNECT_TIMEOUT = env.float("INTEGRATIONS_HTTP_CONNECT_TIMEOUT", default=5.0)
INTEGRATIONS_HTTP_READ_TIMEOUT = env.float("INTEGRATIONS_HTTP_READ_TIMEOUT", default=30.0)
INTEGRATIONS_HTTP_MAX_ATTEMPTS = env.int("INTEGRATIONS_HTTP_MAX_ATTEMPTS", default=4)
INTEGRATIONS_HTTP_MAX_WAIT = env.float("INTEGRATIONS_HTTP_MAX_WAIT", default=30.0)
# Hosts, IPs or CIDR ranges that provider and alert URLs may reach over http or on private addresses
# (integrations.urlsafety, DESIGN.md rule 10). Empty in production: https to public hosts only.
INTEGRATIONS_ALLOWED_LOCAL_HOSTS = env.list("INTEGRATIONS_ALLOWED_LOCAL_HOSTS", default=[])
# Fernet keys for secrets at rest, comma-separated, newest first (empty: one derived from SECRET_KEY, dev/test).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
INTEGRATIONS_DEFAULT_SYNC_INTERVAL_MINUTES = env.int("INTEGRATIONS_DEFAULT_SYNC_INTERVAL_MINUTES", default=60)
INTEGRATIONS_SCHEDULE_JITTER = env.float("INTEGRATIONS_SCHEDULE_JITTER", default=0.1)  # +- share of the interval
INTEGRATIONS_DISPATCH_BATCH = env.int("INTEGRATIONS_DISPATCH_BATCH", default=200)
INTEGRATIONS_BULK_SYNC_CONCURRENCY = env.int("INTEGRATIONS_BULK_SYNC_CONCURRENCY", default=4)
INTEGRATIONS_SYNC_BATCH_SIZE = env.int("INTEGRATIONS_SYNC_BATCH_SIZE", default=1000)
INTEGRATIONS_SYNC_MAX_ATTEMPTS = env.int("INTEGRATIONS_SYNC_MAX_ATTEMPTS", default=5)
INTEGRATIONS_RETRY_BASE_SECONDS = env.int("INTEGRATIONS_RETRY_BASE_SECONDS", default=60)
INTEGRATIONS_RETRY_MAX_SECONDS = env.int("INTEGRATIONS_RETRY_MAX_SECONDS", default=3600)
INTEGRATIONS_STALE_RUN_MINUTES = env.int("INTEGRATIONS_STALE_RUN_MINUTES", default=20)
INTEGRATIONS_RETENTION_DAYS = env.int("INTEGRATIONS_RETENTION_DAYS", default=90)
INTEGRATIONS_ALERT_WEBHOOK_URL = env.str("INTEGRATIONS_ALERT_WEBHOOK_URL", default="")
INTEGRATIONS_ALERT_WEBHOOK_SECRET = env.str("INTEGRATIONS_ALERT_WEBHOOK_SECRET", default="")
INTEGRATIONS_RATE_LIMITING = env.bool("INTEGRATIONS_RATE_LIMITING", default=True)
SANDBOX_BASE_URL = env.str("SANDBOX_BASE_URL", default="http://127.0.0.1:8765")
# OAuth connect flow (integrations.oauth): the redirect URI registered with every provider app (empty: SITE_URL +
# /api/oauth/callback/), how long a started connection may take, and how early staff hear a grant runs out.
INTEGRATIONS_OAUTH_CALLBACK_URL = env.str("INTEGRATIONS_OAUTH_CALLBACK_URL", default="")
INTEGRATIONS_OAUTH_STATE_TTL_SECONDS = env.int("INTEGRATIONS_OAUTH_STATE_TTL_SECONDS", default=600)
INTEGRATIONS_REFRESH_TOKEN_WARN_DAYS = env.int("INTEGRATIONS_REFRESH_TOKEN_WARN_DAYS", default=14)
# Push outbox (integrations.outbox): attempts and backoff of a transient failure, a sending worker's lease, and how
# long the sweeper leaves a fresh entry to its own task before sending it itself.
INTEGRATIONS_OUTBOX_MAX_ATTEMPTS = env.int("INTEGRATIONS_OUTBOX_MAX_ATTEMPTS", default=8)
INTEGRATIONS_OUTBOX_RETRY_BASE_SECONDS = env.int("INTEGRATIONS_OUTBOX_RETRY_BASE_SECONDS", default=30)
INTEGRATIONS_OUTBOX_RETRY_MAX_SECONDS = env.int("INTEGRATIONS_OUTBOX_RETRY_MAX_SECONDS", default=3600)
INTEGRATIONS_OUTBOX_LEASE_SECONDS = env.int("INTEGRATIONS_OUTBOX_LEASE_SECONDS", default=300)
INTEGRATIONS_OUTBOX_SWEEP_GRACE_SECONDS = env.int("INTEGRATIONS_OUTBOX_SWEEP_GRACE_SECONDS", default=60)
INTEGRATIONS_OUTBOX_SWEEP_BATCH = env.int("INTEGRATIONS_OUTBOX_SWEEP_BATCH", default=500)
CELERY_BEAT_SCHEDULE["integrations.dispatch"] = {"task": "integrations.dispatch_due", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["integrations.sweep"] = {"task": "integrations.sweep_runs", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["integrations.health"] = {"task": "integrations.check_health", "schedule": 300.0}
CELERY_BEAT_SCHEDULE["integrations.cleanup"] = {"task": "integrations.cleanup", "schedule": 86400.0}
CELERY_BEAT_SCHEDULE["integrations.outbox_sweep"] = {"task": "integrations.outbox_sweep", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["integrations.oauth_expiry"] = {"task": "integrations.oauth_expiry_warn", "schedule": 3600.0}

# --- webhooks -----------------------------------------------------------------------------------------------------
# Deliveries larger than this get 413 without being read.
WEBHOOKS_MAX_BODY_BYTES = env.int("WEBHOOKS_MAX_BODY_BYTES", default=1024 * 1024)
# Processed and ignored events are kept this long (it is also the de-duplication window: at least 7 days,
# longer than any provider retries); failed and dead ones longer, for staff to inspect and replay.
WEBHOOKS_RETENTION_DAYS = env.int("WEBHOOKS_RETENTION_DAYS", default=30)
WEBHOOKS_FAILED_RETENTION_DAYS = env.int("WEBHOOKS_FAILED_RETENTION_DAYS", default=90)
WEBHOOKS_MAX_ATTEMPTS = env.int("WEBHOOKS_MAX_ATTEMPTS", default=10)
WEBHOOKS_RETRY_BASE_SECONDS = env.int("WEBHOOKS_RETRY_BASE_SECONDS", default=30)
WEBHOOKS_RETRY_MAX_SECONDS = env.int("WEBHOOKS_RETRY_MAX_SECONDS", default=6 * 3600)
WEBHOOKS_PENDING_GRACE_SECONDS = env.int("WEBHOOKS_PENDING_GRACE_SECONDS", default=60)
WEBHOOKS_PROCESSING_TIMEOUT_SECONDS = env.int("WEBHOOKS_PROCESSING_TIMEOUT_SECONDS", default=300)
WEBHOOKS_DRAIN_BATCH = env.int("WEBHOOKS_DRAIN_BATCH", default=50)
WEBHOOKS_DRAIN_MAX_EVENTS = env.int("WEBHOOKS_DRAIN_MAX_EVENTS", default=2000)
WEBHOOKS_SECRET_ROTATION_HOURS = env.float("WEBHOOKS_SECRET_ROTATION_HOURS", default=2.0)
# Hot-path caches of the receiver (per process): the integration row, and "a drain is already due".
WEBHOOKS_TARGET_CACHE_SECONDS = env.float("WEBHOOKS_TARGET_CACHE_SECONDS", default=2.0)
WEBHOOKS_NUDGE_DEBOUNCE_SECONDS = env.float("WEBHOOKS_NUDGE_DEBOUNCE_SECONDS", default=0.5)
WEBHOOKS_SWEEP_SECONDS = env.int("WEBHOOKS_SWEEP_SECONDS", default=30)
WEBHOOKS_COUNTERS_FLUSH_SECONDS = env.int("WEBHOOKS_COUNTERS_FLUSH_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["webhooks.sweep"] = {"task": "webhooks.sweep", "schedule": float(WEBHOOKS_SWEEP_SECONDS)}
CELERY_BEAT_SCHEDULE["webhooks.flush_counters"] = {
    "task": "webhooks.flush_counters",
    "schedule": float(WEBHOOKS_COUNTERS_FLUSH_SECONDS),
}
