"""Settings, all from the environment (django-environ); the names are documented in README.md.

Defaults are the embedded ones of `make run`: SQLite and files under `.data/`, a local anvil
chain on 127.0.0.1:8545 (chain id 31337), tasks run eagerly unless REDIS_URL is set.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(environ.Env().str("HALLMARK_DATA_DIR", default=str(BASE_DIR / ".data")))

env = environ.Env()
if (BASE_DIR / ".env").exists():  # optional local overrides, never committed
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
_DEVELOPMENT_SECRET_KEY = "hallmark-development-only-secret-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not DEBUG and SECRET_KEY in ("", _DEVELOPMENT_SECRET_KEY):
    # signed sessions, CSRF and password resets all rest on it: never run production on a known key
    raise environ.ImproperlyConfigured(
        "SECRET_KEY must be set to a secret of your own when DEBUG is off (DEBUG=0): generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` and put it in the environment "
        "(docs/operations.md, Production settings)"
    )
SECRET_KEY = SECRET_KEY or _DEVELOPMENT_SECRET_KEY
# Django's test client sends Host: testserver; it is a development default only
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] + (["testserver"] if DEBUG else []))
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "registry",
    "royalties",
    "fleet",
    "marketplace",
]

MIDDLEWARE = [
    "telemetry.http.RequestMetricsMiddleware",  # first: counts and times every answer, errors too
    "marketplace.middleware.OperationsEndpointsMiddleware",  # probes by IP over HTTP: before host checks
    "django.middleware.security.SecurityMiddleware",
    "telemetry.logs.RequestContextMiddleware",  # X-Request-ID, the log context, one access line per request
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "marketplace.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
APPEND_SLASH = False  # Hugging Face paths must match exactly; a redirect would lose HEAD semantics

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "static")))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
# File storage: "local" (MEDIA_ROOT) or "s3" (any S3-compatible service, via django-storages)
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
DOWNLOAD_PRESIGN_SECONDS = env.int("DOWNLOAD_PRESIGN_SECONDS", default=300)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if STORAGE_BACKEND == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="us-east-1"),
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            "querystring_auth": True,
            "querystring_expire": DOWNLOAD_PRESIGN_SECONDS,
            "signature_version": "s3v4",
            "file_overwrite": False,
            "default_acl": None,
        },
    }
# Uploads stream to disk above this size instead of being held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
MAX_ARTIFACT_SIZE = env.int("MAX_ARTIFACT_SIZE", default=64 * 1024**3)
VENDOR_STORAGE_QUOTA = env.int("VENDOR_STORAGE_QUOTA", default=500 * 1024**3)
UPLOAD_EXPIRY_SECONDS = env.int("UPLOAD_EXPIRY_SECONDS", default=24 * 3600)
# Hashing and inspection of a version's files run in a child process under these limits
# (registry/sandbox.py); CPU and wall budgets grow by one second per 50 MiB of the version's files.
INSPECTION_MEMORY_LIMIT = env.int("INSPECTION_MEMORY_LIMIT", default=2 * 1024**3)
INSPECTION_CPU_SECONDS = env.int("INSPECTION_CPU_SECONDS", default=60)
INSPECTION_WALL_SECONDS = env.int("INSPECTION_WALL_SECONDS", default=120)
INSPECTION_MAX_ATTEMPTS = env.int("INSPECTION_MAX_ATTEMPTS", default=3)
# Segment size of the per-segment digests computed for each new version (hallmark.segments; the
# size is part of what the vendor signs, so changing it affects new versions only).
VERSION_SEGMENT_SIZE = env.int("VERSION_SEGMENT_SIZE", default=16 * 1024**2)
if not 1024**2 <= VERSION_SEGMENT_SIZE <= 1024**3:
    raise environ.ImproperlyConfigured("VERSION_SEGMENT_SIZE must be from 1 MiB to 1 GiB (bytes)")

# --- jobs (Celery) -------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# without Redis, tasks run eagerly; Celery still opens a broker connection to send one, and
# kombu warns "No hostname was supplied" for a bare "memory://": name the (in-process) host
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="hallmark")
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task to be redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

CELERY_BEAT_SCHEDULE = {
    "index-chain": {"task": "registry.index_chain", "schedule": env.float("INDEXER_INTERVAL", default=5.0)},
    "resume-pending-chain": {"task": "marketplace.resume_pending_chain", "schedule": 60.0},
    "expire-uploads": {"task": "marketplace.expire_uploads", "schedule": 3600.0},
    "reconcile-royalties": {"task": "royalties.reconcile", "schedule": env.float("RECONCILE_INTERVAL", default=300.0)},
    "purge-expired": {"task": "marketplace.purge_expired", "schedule": 3600.0},
    # closes due receipt batches and anchors them (docs/recorder.md); a closed batch waits for the next run
    "close-receipt-batches": {"task": "marketplace.close_receipt_batches", "schedule": env.float("RECEIPT_CHECK_SECONDS", default=5.0)},
}

# --- chain ---------------------------------------------------------------------------------
CHAIN_RPC_URL = env.str("CHAIN_RPC_URL", default="http://127.0.0.1:8545")
CHAIN_ID = env.int("CHAIN_ID", default=31337)
CHAIN_RPC_TIMEOUT = env.float("CHAIN_RPC_TIMEOUT", default=10.0)
REGISTRY_ADDRESS = env.str("REGISTRY_ADDRESS", default="")
DEPLOYMENTS_DIR = Path(env.str("DEPLOYMENTS_DIR", default=str(BASE_DIR / "deployments")))
RELAYER_PRIVATE_KEY = env.str("RELAYER_PRIVATE_KEY", default="")
RELAYER_KEYSTORE = env.str("RELAYER_KEYSTORE", default="")
RELAYER_KEYSTORE_PASSWORD = env.str("RELAYER_KEYSTORE_PASSWORD", default="")
CONFIRMATIONS = env.int("CONFIRMATIONS", default=1)
# a licence seen at the latest block but not yet CONFIRMATIONS deep grants downloads for at most
# this long before the chain is asked again (it is never mirrored until it is confirmed)
LICENSE_UNCONFIRMED_GRANT_SECONDS = env.float("LICENSE_UNCONFIRMED_GRANT_SECONDS", default=15)
# the API's purchase transaction accepts a licence ending at most this much before the expiry it
# shows (block timestamps drift); a shorter licence (terms changed in front of it) reverts
LICENSE_EXPIRY_SLACK_SECONDS = env.int("LICENSE_EXPIRY_SLACK_SECONDS", default=600)
PLATFORM_FEE_BPS = env.int("PLATFORM_FEE_BPS", default=250)
RECEIPT_TIMEOUT = env.float("RECEIPT_TIMEOUT", default=120.0)
SIGNATURE_TTL_SECONDS = env.int("SIGNATURE_TTL_SECONDS", default=24 * 3600)
# relayer: a transaction still unmined this many blocks after it was sent is re-signed (same
# nonce) with fees raised by RELAYER_FEE_BUMP_PERCENT (at least the 12.5 % nodes require), never
# above RELAYER_MAX_FEE_PER_GAS (wei, 0 = no cap); each vendor (sponsor) may make the relayer
# spend at most RELAYER_DAILY_GAS_LIMIT_WEI in 24 hours (0 = no cap), past it: 429
RELAYER_REPLACE_AFTER_BLOCKS = env.int("RELAYER_REPLACE_AFTER_BLOCKS", default=5)
RELAYER_FEE_BUMP_PERCENT = env.int("RELAYER_FEE_BUMP_PERCENT", default=20)
RELAYER_MAX_FEE_PER_GAS = env.int("RELAYER_MAX_FEE_PER_GAS", default=0)
RELAYER_DAILY_GAS_LIMIT_WEI = env.int("RELAYER_DAILY_GAS_LIMIT_WEI", default=5 * 10**16)
# below this balance (wei) the relayer signs nothing new: queued rows wait (the portal and /readyz
# say so) and go out by themselves once the wallet is funded; rows already signed are still sent.
# 0.005 ETH pays one worst-case relayed call (300,000 gas at a 16 gwei max fee), so the relayer
# stops while it can still finish what it signed: a transaction signed without the money for it
# would hold a nonce that blocks every later one. 0 = no minimum (each transaction's own gas x
# max fee is still checked against the balance before it is signed)
RELAYER_MIN_BALANCE_WEI = env.int("RELAYER_MIN_BALANCE_WEI", default=5 * 10**15)
# the RPC URL published to clients (GET /api/v1/chain); empty: don't publish one
PUBLIC_CHAIN_RPC_URL = env.str("PUBLIC_CHAIN_RPC_URL", default=CHAIN_RPC_URL if CHAIN_ID == 31337 else "")
REGISTRY_DEPLOY_BLOCK = env.int("REGISTRY_DEPLOY_BLOCK", default=0)  # else read from the deployment record
INDEXER_MAX_RANGE = env.int("INDEXER_MAX_RANGE", default=2000)
# modules with apply(events) / rollback(events), called by the indexer in its transaction
INDEXER_PROJECTIONS = ["royalties.projections", "marketplace.projections"]

SIWE_DOMAIN = env.str("SIWE_DOMAIN", default="")  # empty: the Host the request came to
SIWE_NONCE_TTL_SECONDS = env.int("SIWE_NONCE_TTL_SECONDS", default=600)
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=90)  # a new token's default lifetime; 0: the maximum
# the longest a token may live (0: no maximum); longer, or never-expiring, requests are refused
API_TOKEN_MAX_TTL_DAYS = env.int("API_TOKEN_MAX_TTL_DAYS", default=365)
# edge devices (fleet/): a device token's lifetime, a device challenge's, and the rate of the
# unauthenticated challenge and token endpoints (per client address)
DEVICE_TOKEN_TTL_SECONDS = env.int("DEVICE_TOKEN_TTL_SECONDS", default=3600)
DEVICE_CHALLENGE_TTL_SECONDS = env.int("DEVICE_CHALLENGE_TTL_SECONDS", default=300)
DEVICE_AUTH_RATE_LIMIT = env.str("DEVICE_AUTH_RATE_LIMIT", default="60/min")
# expired Sign-In with Ethereum nonces, and refused anonymous download records, are deleted after
# these (the purge task, Celery beat, and `manage.py purge_expired`)
SIWE_NONCE_RETENTION_HOURS = env.int("SIWE_NONCE_RETENTION_HOURS", default=24)
REFUSED_DOWNLOAD_RETENTION_DAYS = env.int("REFUSED_DOWNLOAD_RETENTION_DAYS", default=30)

# download receipts (docs/recorder.md): one per granted GET, batched under a Merkle root anchored on
# chain every RECEIPT_BATCH_SECONDS or RECEIPT_BATCH_SIZE receipts, whichever comes first.
# RECEIPTS_ENABLED=0 only for the bench's baseline: receipts are part of the service
RECEIPTS_ENABLED = env.bool("RECEIPTS_ENABLED", default=True)
RECEIPT_BATCH_SECONDS = env.int("RECEIPT_BATCH_SECONDS", default=60)
RECEIPT_BATCH_SIZE = env.int("RECEIPT_BATCH_SIZE", default=10_000)
if not 1 <= RECEIPT_BATCH_SIZE <= 100_000:
    raise environ.ImproperlyConfigured("RECEIPT_BATCH_SIZE must be from 1 to 100,000 (receipts)")

# Downloads: behind nginx, set the internal location that maps to MEDIA_ROOT (e.g. "/_media/")
DOWNLOAD_X_ACCEL_REDIRECT_PREFIX = env.str("DOWNLOAD_X_ACCEL_REDIRECT_PREFIX", default="")
DOWNLOAD_RATE_LIMIT = env.str("DOWNLOAD_RATE_LIMIT", default="1200/min")  # per API token (or address)
# the download hot path keeps live tokens, resolved files and licence grants in each process
# (registry/caching.py): at most this long (0: off), and every process looks for changes made
# elsewhere (a token revoked, a version revoked or published) this often
HOT_CACHE_SECONDS = env.float("HOT_CACHE_SECONDS", default=60)
HOT_CACHE_CHECK_SECONDS = env.float("HOT_CACHE_CHECK_SECONDS", default=1)
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="600/min")

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- portal --------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal-home"
LOGOUT_REDIRECT_URL = "home"
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Hallmark <no-reply@localhost>")
PORTAL_UPLOAD_CHUNK_SIZE = env.int("PORTAL_UPLOAD_CHUNK_SIZE", default=16 * 1024 * 1024)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- production security (docs/operations.md, "Production settings") -----------------------
# With DEBUG off the site is HTTPS only: secure cookies, HSTS and a redirect to https, each
# overridable from the environment (e.g. SECURE_SSL_REDIRECT=0 when the proxy redirects).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)  # allows, does not submit, preloading
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# the header a TLS-terminating proxy sets, e.g. HTTP_X_FORWARDED_PROTO (its value "https" marks
# a secure request); only set it when that proxy always sets or strips the header itself
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None
# the reverse proxies whose X-Forwarded-For is believed (IPs or CIDRs); from anyone else the
# header is ignored and the peer address is the client (marketplace/api/throttles.py)
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marketplace.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "EXCEPTION_HANDLER": "marketplace.api.errors.exception_handler",
    # each view's nested serializers and its error answers (the `Error` body) in the schema
    "DEFAULT_SCHEMA_CLASS": "marketplace.api.schema.ApiSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["marketplace.api.throttles.ApiThrottle"],
    "URL_FORMAT_OVERRIDE": None,  # `?format=` filters the catalog by file format
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hallmark API",
    "DESCRIPTION": "Edge model marketplace with an on-chain provenance registry",
    "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR",  # assets from the drf-spectacular-sidecar package: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # `check --deploy` is about the deployment's security: not the schema's completeness (that is
    # tests/marketplace/test_openapi.py and test_schemathesis.py, which fuzzes every operation)
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # what Django's path converters match: a value outside these never reaches a view (the URL does not route)
    "PATH_CONVERTER_OVERRIDES": {
        "int": {"type": "integer", "minimum": 0},
        "str": {"type": "string", "pattern": "^[^/]+$"},
        "path": {"type": "string", "pattern": "^[^\\n]+$"},
    },
}

# operations (docs/operations.md, "Running it"): /healthz, /readyz and /metrics
READINESS_TIMEOUT_SECONDS = env.float("READINESS_TIMEOUT_SECONDS", default=2.0)  # per check
READINESS_CACHE_SECONDS = env.float("READINESS_CACHE_SECONDS", default=2.0)  # probes flooding /readyz reuse the answer
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")  # Bearer token for /metrics; empty: loopback only
METRICS_ALLOW_LOOPBACK = env.bool("METRICS_ALLOW_LOOPBACK", default=True)  # unproxied requests from 127.0.0.1/::1

# LOG_FORMAT: `plain` (for people) or `json` (one object per line, for a log pipeline); both carry
# the request id and redact tokens and keys (telemetry/logs.py, docs/operations.md "Logs")
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise environ.ImproperlyConfigured(f"LOG_FORMAT must be `plain` or `json`, not {LOG_FORMAT[:20]!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "telemetry.logs.ContextFilter"}},
    "formatters": {
        "plain": {"()": "telemetry.logs.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(context)s%(message)s"},
        "json": {"()": "telemetry.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"web3": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}, "gguf": {"level": "WARNING"}},
}

# ledger indexes carry INCLUDE columns for PostgreSQL index-only scans; SQLite (make run) ignores them
SILENCED_SYSTEM_CHECKS = ["models.W040"]
