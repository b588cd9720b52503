"""Crowdlens settings: read only from environment variables, each declared where it is read.

Defaults run on a laptop with nothing else installed: SQLite and local files
under ./var/, console email. Production sets DATABASE_URL (PostgreSQL),
S3_BUCKET, SECRET_KEY and DEBUG=false.

Over 400 lines on purpose: every setting of every app is read here, in one place, each with its
validation (healthchecks' habit) and its meaning (``help=``): config.env records the declarations
and docs/reference/settings.md is rendered from them (``manage.py docs_reference``), section by
section as ``env.section()`` names them below.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import env
from config.env import (
    declare, env_bool, env_choice, env_float, env_int, env_list, env_opt_float, env_opt_int, env_str, env_time,
)

BASE_DIR = Path(__file__).resolve().parent.parent
env.section("Site")
declare(env.ENV_FILE_VARIABLE, type="string", default="", shown="none (`make run`: `var/crowdlens.env`, created on its first start)",
        read_by="config/env.py, in every process before any other setting", help=
        "A settings file, `NAME=value` lines as systemd's `EnvironmentFile=` reads them. Its values win over the "
        "environment's; it is read afresh by every process when it starts (never copied into the environment), so "
        "the next training run, the admin's \"start a run\" included, uses an edit without a restart. The web "
        "server and the scheduler read it only when they start.")
VAR_DIR = Path(env_str("CROWDLENS_VAR_DIR", str(BASE_DIR / "var"), shown="`./var`", help=
                       "Folder of the default SQLite database, media and static files (and `make run`'s generated "
                       "secret key)."))

DEBUG = env_bool("DEBUG", False, shown="`false` (`make run`: `true`)", help=
                 "Django's debug mode. With `false` the site still serves its own static files (whitenoise).")
# `make run` writes a generated key to var/secret_key; every process of the
# installation (a command run by hand in a second terminal included) reads the
# same file, so links one signs (newsletter confirm/unsubscribe) work in all.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
SECRET_KEY = env_str("SECRET_KEY", shown="none: required when `DEBUG` is off, unless `var/secret_key` exists", help=
                     "Django's signing key (sessions, CSRF, newsletter links); the same on every host.")
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text(encoding="utf-8").strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when DEBUG is off, or {SECRET_KEY_FILE} must exist (`make run` writes it); "
            "for local development set DEBUG=true")
    SECRET_KEY = "insecure-development-key-only-for-debug"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"], help=
                         "Comma-separated host names the site answers to.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [], help=
                                "Comma-separated origins (`https://host`) allowed for browser POSTs behind a proxy.")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000",
                   shown="`http://127.0.0.1:8000` (`make run`: `http://` and `RUN_ADDRESS`)",
                   help="Public base URL, for absolute links in emails and model manifests.").rstrip("/")
TIME_ZONE = env_str("TIME_ZONE", "UTC", help="Time zone of challenge days, schedules and leaderboards.")
USE_TZ = True
LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["config.formats"]  # one date format in the admin: "2026-12-04 23:24" (config/formats)
USE_I18N = False

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "collector",
    "training",
    "challenges",
    "newsletter",
    "pages",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.RequestSizeLimitMiddleware",
    "config.middleware.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- database -------------------------------------------------------------
env.section("Database")
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'crowdlens.sqlite3'}",
                       shown="`sqlite:///var/crowdlens.sqlite3`", help=
                       "`postgres://user:pass@host:5432/db` in production. SQLite runs in WAL mode with IMMEDIATE "
                       "transactions and a busy timeout.")
# Read whatever the database is, so the reference is the same on every installation.
SQLITE_BUSY_TIMEOUT = env_int("SQLITE_BUSY_TIMEOUT", 30, minimum=1, help=
                              "Seconds a SQLite writer waits for the lock before failing.")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0, help=
                                                                    "Seconds to keep database connections open."))
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent uploads from several workers: WAL lets readers run beside the
    # writer, IMMEDIATE transactions take the write lock up front (no
    # deadlock-prone lock upgrades), and the busy timeout waits instead of
    # answering "database is locked".
    _db["OPTIONS"] = {
        "timeout": SQLITE_BUSY_TIMEOUT,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- clients and shared counters (see docs/running-in-public.md) ----------
env.section("Clients and shared counters")
# config.client_ip holds the rule; the throttles and django-axes call it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, help=
                              "How many reverse proxies in front of the site append to `X-Forwarded-For`. `0`: the "
                              "client is the socket address and `X-Forwarded-For` is ignored. `N`: the client is the "
                              "address `N` hops from the right of `X-Forwarded-For` (the proxy itself being the last "
                              "hop). Every throttle and the sign-in lock-out key on this address. Set it to exactly "
                              "the number of proxies you run: more lets clients forge their address.")

# Throttle counters, lock-outs and the like must be shared by every worker and
# host, or each of N workers lets the whole rate through. Without Redis the
# database holds them (table created by `migrate`, see config.apps).
REDIS_URL = env_str("REDIS_URL", shown="empty: the database cache", help=
                    "Cache for throttle counters and lock-outs shared by all web workers and hosts "
                    "(`redis://host:6379/0`). Without it they live in the database table `crowdlens_cache`, which "
                    "`migrate` creates; the rates hold whatever the number of workers and hosts.")
CACHE_KEY_PREFIX = env_str("CACHE_KEY_PREFIX", "crowdlens", help=
                           "Prefix of every cache key (two installations sharing one Redis).")
# Past MAX_ENTRIES Django culls a third of the rows, live counters included
# (resetting those clients' limits): far above what a site without Redis sees.
CACHE_MAX_ENTRIES = env_int("CACHE_MAX_ENTRIES", 100_000, minimum=1000, help=
                            "Rows the database cache keeps (without `REDIS_URL`) before Django culls a third of them "
                            "(culled counters start again); a site that needs more should use Redis.")
# Bounded waits: a Redis that stops answering (a host gone, packets dropped) fails a throttled
# request with a 503 in seconds (config.errors) instead of holding the worker for minutes.
REDIS_TIMEOUT = env_float("REDIS_TIMEOUT", 2.0, minimum=0.1, help=
                          "Seconds to connect to or hear from Redis before a throttled request answers 503 "
                          "`unavailable` (with `Retry-After`).")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": CACHE_KEY_PREFIX,
                          "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "crowdlens_cache",
                          "KEY_PREFIX": CACHE_KEY_PREFIX, "OPTIONS": {"MAX_ENTRIES": CACHE_MAX_ENTRIES}}}

# --- files ----------------------------------------------------------------
env.section("Files and S3")
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media"), shown="`var/media`", help=
                  "Local file storage when `S3_BUCKET` is unset (one machine only). Never served directly: files go "
                  "through permission-checking views."))
MEDIA_URL = "/media/"  # never served directly: files go through permission-checking views
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static"), shown="`var/static`", help=
                   "Where `collectstatic` puts static files."))
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
WHITENOISE_USE_FINDERS = True  # serve app static files even before collectstatic

S3_BUCKET = env_str("S3_BUCKET", help=
                    "When set, photos and models go to this S3 bucket through django-storages and boto3 (every "
                    "host of a several-host installation needs it).")
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL", shown="AWS", help="S3-protocol endpoint (MinIO, Ceph, R2, ...).") or None
S3_REGION = env_str("S3_REGION", "us-east-1", help="Bucket region.")
S3_ACCESS_KEY_ID = env_str("S3_ACCESS_KEY_ID", shown="boto3's default chain", help="S3 access key.") or None
S3_SECRET_ACCESS_KEY = env_str("S3_SECRET_ACCESS_KEY", shown="boto3's default chain", help="S3 secret key.") or None
S3_PRESIGN_TTL = env_int("S3_PRESIGN_TTL", 3600, minimum=1, help="Seconds a presigned download URL stays valid.")
S3_CONNECT_TIMEOUT = env_float("S3_CONNECT_TIMEOUT", 5.0, minimum=0.1, help=
                               "Seconds to connect before an S3 request gives up (the upload then answers 503).")
S3_READ_TIMEOUT = env_float("S3_READ_TIMEOUT", 30.0, minimum=0.1, help=
                            "Seconds to wait for S3's answer before a request gives up (the upload then answers 503).")
S3_MAX_ATTEMPTS = env_int("S3_MAX_ATTEMPTS", 3, minimum=1, help="Attempts per S3 request, retries included.")

if S3_BUCKET:
    from botocore.config import Config as _BotoConfig

    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL,
            "region_name": S3_REGION,
            "access_key": S3_ACCESS_KEY_ID,
            "secret_key": S3_SECRET_ACCESS_KEY,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": S3_PRESIGN_TTL,
            "file_overwrite": True,  # keys are generated and unique; skip the exists() round trip
            "addressing_style": "path",
            # Bounded waits: an endpoint that drops packets must fail an upload
            # with a 503 in seconds, not hang a worker for minutes.
            "client_config": _BotoConfig(
                s3={"addressing_style": "path"},
                connect_timeout=S3_CONNECT_TIMEOUT,
                read_timeout=S3_READ_TIMEOUT,
                retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
            ),
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(MEDIA_ROOT)}}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- uploads --------------------------------------------------------------
env.section("Photos")
PHOTO_MAX_BYTES = env_int("PHOTO_MAX_BYTES", 25 * 1024 * 1024, minimum=1024, shown="`26214400` (25 MiB)", help=
                          "Largest upload; bigger ones get 413 before the body is read (nginx's `client_max_body_size` "
                          "follows it).")
PHOTO_MAX_PIXELS = env_int("PHOTO_MAX_PIXELS", 50_000_000, minimum=10_000, help=
                           "Largest image in pixels (decompression bombs get 413).")
PHOTO_TRAINING_SHORT_SIDE = env_int("PHOTO_TRAINING_SHORT_SIDE", 256, minimum=32, help=
                                    "Short side of the stored training derivative, in pixels.")
PHOTO_THUMBNAIL_SIZE = env_int("PHOTO_THUMBNAIL_SIZE", 480, minimum=64, help=
                               "Longest side of the stored thumbnail, in pixels.")
PHOTO_NEAR_DUPLICATE_DISTANCE = env_int("PHOTO_NEAR_DUPLICATE_DISTANCE", 6, minimum=0, help=
                                        "Largest Hamming distance between 64-bit difference hashes flagged as a "
                                        "near-duplicate.")
PHOTO_UPLOAD_RATE = env_str("PHOTO_UPLOAD_RATE", "120/hour", help=
                            "Uploads per volunteer (DRF rate syntax: `N/second`, `minute`, `hour` or `day`).")
LABEL_PROTOTYPE_TARGET = env_int("LABEL_PROTOTYPE_TARGET", 30, minimum=1, help=
                                 "Approved photos per label for a prototype model; per-label override in the admin.")
LABEL_PRODUCTION_TARGET = env_int("LABEL_PRODUCTION_TARGET", 200, minimum=1, help=
                                  "Approved photos per label for a production model; per-label override in the admin.")
# Memory an upload may cost, whatever its bytes (docs/collector.md, "Memory per upload").
PHOTO_MAX_PIXELS_PNG_WEBP = env_int("PHOTO_MAX_PIXELS_PNG_WEBP", 16_000_000, minimum=10_000, help=
                                    "Largest PNG or WebP in pixels: they decode whole (no reduced-scale decode as "
                                    "JPEG has) and phones shoot neither (a tablet's screenshot is 6 MP).")
PHOTO_DECODE_MEMORY_MB = env_int("PHOTO_DECODE_MEMORY_MB", 512, minimum=64, help=
                                 "This host's budget for large decodes (32 MB or more each), shared by all its web "
                                 "workers; a decode that does not fit waits for room.")
PHOTO_DECODE_WAIT_SECONDS = env_float("PHOTO_DECODE_WAIT_SECONDS", 30.0, minimum=1.0, help=
                                      "How long a large decode waits for room in that budget before the upload "
                                      "answers 503 (retry).")
# Requests bigger than this are refused from their Content-Length, before the body is read.
REQUEST_MAX_BYTES = PHOTO_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads spool to a temporary file
# The upload spool: where uploads (and chunked bodies) larger than that are written while they arrive;
# the system's temporary folder when unset. /healthz fails while it has less free space than one largest
# upload (REQUEST_MAX_BYTES); a full one answers uploads 503 storage_unavailable.
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR", shown="the system's temporary folder", help=
                               "The upload spool: where uploads larger than 2 MB are written while they arrive. "
                               "`/healthz` fails while it has less free space than one largest upload; a full one "
                               "answers uploads 503 `storage_unavailable`.") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["collector.uploads.LimitedTemporaryFileUploadHandler"]

# --- email ----------------------------------------------------------------
env.section("Email")
EMAIL_HOST = env_str("EMAIL_HOST", shown="empty: emails are printed to the console", help="SMTP server.")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, help="SMTP port.")
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", help="SMTP user name.")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", help="SMTP password.")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False, help="STARTTLS.")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1, help="SMTP socket timeout, seconds.")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Crowdlens <crowdlens@localhost>", help="Sender of every email.")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)

# --- API ------------------------------------------------------------------
env.section("API")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.openapi.ApiSchema",
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1, help="Page size of paginated API lists."),
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"uploads": PHOTO_UPLOAD_RATE, "anon_signup": env_str("SIGNUP_RATE", "30/hour", help=
        "Registrations, sign-ins and token requests per client address (see `TRUSTED_PROXY_COUNT`).")},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Our throttles (config.throttling) ask config.client_ip; this is for any DRF class used as it is.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Crowdlens API",
    "DESCRIPTION": "Photo collection, review, challenges and on-device model delivery.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our own static files: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for a choice set used by several fields (collector: review input and photo output).
    "ENUM_NAME_OVERRIDES": {"RejectionReasonEnum": "collector.models.RejectionReason"},
}

# Volunteers sign in with their display name: the similarity check sees it (collector.password_validation).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
     "OPTIONS": {"user_attributes": ("username", "display_name", "email", "first_name", "last_name")}},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "collector.password_validation.NotOnlyWhitespaceValidator"},
]
LOGIN_URL = "/signin/"
LOGIN_REDIRECT_URL = "/me/"

# --- HTTPS, cookies, Content-Security-Policy (see docs/running-in-public.md) -
env.section("HTTPS, cookies and Content-Security-Policy")
# The health checks answer on http too: load balancers probe plainly.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False, help=
                            "The reverse proxy terminates TLS and sets `X-Forwarded-Proto`: believe its scheme. "
                            "With an "
                            "https `SITE_URL` also HSTS, a redirect from http to https (except `/healthz` and "
                            "`/healthz/live`) and secure session and CSRF cookies.")
HTTPS_SITE = BEHIND_TLS_PROXY and SITE_URL.startswith("https://")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = HTTPS_SITE
SECURE_REDIRECT_EXEMPT = [r"^healthz(/.*)?$"]
HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600, minimum=0, shown="`31536000` (1 year)", help=
                       "`Strict-Transport-Security` max-age, sent only with `BEHIND_TLS_PROXY` and an https "
                       "`SITE_URL`.")
SECURE_HSTS_SECONDS = HSTS_SECONDS if HTTPS_SITE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False, help="Add `includeSubDomains` to HSTS.")
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False, help=  # preloading is hard to undo: the operator opts in
                               "Add `preload` to HSTS (hard to undo: opt in only when you mean it).")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Read whatever DEBUG is, so the reference is the same on every installation.
_secure_cookies = env_bool("SECURE_COOKIES", SITE_URL.startswith("https://"), shown="`true` when `SITE_URL` is https",
                           help="Send session and CSRF cookies only over HTTPS (when `DEBUG` is off).")
if not DEBUG:
    SESSION_COOKIE_SECURE = _secure_cookies
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if HTTPS_SITE:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

env.section("Logging")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO", help="Root log level.")},
    # APScheduler's INFO lines ("Adding job tentatively", "Running job ..." every
    # 30 s for the request poll) say nothing an operator needs; the scheduler
    # logs each job it starts and how it ended itself.
    # django-axes logs every successful sign-in and sign-out at INFO with the name and address masked
    # ("Successful login by ********************"): nothing an operator can use, and the admin's Access logs
    # hold who signed in, from where, when. Its failures and lock-outs are WARNINGs and stay.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "apscheduler": {"level": "WARNING"},
                "axes.handlers.database": {"level": "WARNING"}},
}

# --- scheduler -----------------------------------------------------------
# The one `manage.py runscheduler` process runs each app's jobs (its jobs.py; config.scheduler).
env.section("Scheduler and housekeeping")
SCHEDULER_MISFIRE_GRACE = env_int("SCHEDULER_MISFIRE_GRACE", 6 * 3600, minimum=1, help=
                                  "Seconds after its time a missed scheduled job still runs (once) when the scheduler "
                                  "comes back.")

# Housekeeping: storage_sweep nightly (collector/jobs.py), report only unless told to delete
# (then only files older than the age rule; uploads in flight are younger).
STORAGE_SWEEP_AT = env_time("STORAGE_SWEEP_AT", "03:30", help=
                            "When the nightly `storage_sweep` looks for files no photo refers to (shown in the "
                            "admin's Storage sweeps), in `TIME_ZONE`.")
STORAGE_SWEEP_DELETE = env_bool("STORAGE_SWEEP_DELETE", False, help=
                                "`true`: the nightly sweep deletes the orphans it finds; `false`: it only reports "
                                "them.")
STORAGE_SWEEP_MIN_AGE_HOURS = env_float("STORAGE_SWEEP_MIN_AGE_HOURS", 24.0, minimum=1.0, help=
                                        "`storage_sweep`, nightly and by hand (`--min-age-hours` overrides it), "
                                        "leaves younger files alone (uploads in flight).")

# --- training -------------------------------------------------------------
# See docs/training.md. Knobs left unset (None) take training.ml.HParams' tuned defaults.
env.section("Training and model delivery")
_TUNED = "unset: `training.ml.HParams`' tuned default ([training-ml.md](../training-ml.md))"
TRAINING_TFLITE_VARIANTS = ("float32", "float16", "dynamic", "int8")
# coreml: the zipped Core ML package for iOS, converted from the same model, not evaluated (docs/training-ml.md).
TRAINING_VARIANT_NAMES = (*TRAINING_TFLITE_VARIANTS, "coreml")
TRAINING_ALPHA = env_float("TRAINING_ALPHA", 0.35, minimum=0.1, maximum=1.4,
    help="MobileNetV2 width multiplier.")
TRAINING_INPUT_SIZE = env_int("TRAINING_INPUT_SIZE", 224, minimum=32,
    help="Input height and width in pixels (96 or more with ImageNet weights).")
TRAINING_BASE_WEIGHTS = env_str("TRAINING_BASE_WEIGHTS", "imagenet",
    help="`imagenet` (Keras downloads and caches them), a path to a local `.h5` weights file, or `none`. Weights "
         "that cannot be had fail the run naming this variable.").strip() or "imagenet"
TRAINING_NIGHTLY_AT = env_time("TRAINING_NIGHTLY_AT", "02:00",
    help="Time of the nightly training run, in `TIME_ZONE`.")
TRAINING_MIN_PHOTOS_PER_LABEL = env_int("TRAINING_MIN_PHOTOS_PER_LABEL", 5, minimum=1,
    help="Labels with fewer approved photos are left out of a run (recorded with why).")
TRAINING_VAL_FRACTION = env_float("TRAINING_VAL_FRACTION", 0.15, minimum=0.0, maximum=0.5,
    help="Share of the stable hash split used for validation.")
TRAINING_TEST_FRACTION = env_float("TRAINING_TEST_FRACTION", 0.15, minimum=0.01, maximum=0.5,
    help="Share of the stable hash split used for the test.")
TRAINING_GATE_MARGIN = env_float("TRAINING_GATE_MARGIN", 1.0, minimum=0.0, maximum=100.0,
    help="Points of test accuracy a candidate may trail the model in service (re-evaluated on the same new test "
         "split).")
TRAINING_GATE_VARIANT = env_choice("TRAINING_GATE_VARIANT", "float32", set(TRAINING_TFLITE_VARIANTS),
    help="The variant compared by that rule (a `.tflite` one).")
TRAINING_INT8_MAX_DROP = env_float("TRAINING_INT8_MAX_DROP", 1.0, minimum=0.0, maximum=100.0,
    help="Points of test accuracy the int8 variant may trail float32.")
TRAINING_GATE_ALPHA = env_float("TRAINING_GATE_ALPHA", 0.05, minimum=0.0, maximum=1.0,
    help="Level of the gate's exact paired (McNemar) test: a drop beyond either margin holds a candidate back only"
         " when p is under this (1: any drop beyond the margin).")
# Secret and per installation: a published salt let a client pick, offline, an install id that lands inside a
# rollout. By default derived from SECRET_KEY (every host of an installation shares it).
TRAINING_ROLLOUT_SALT = env_str("TRAINING_ROLLOUT_SALT", "", shown="derived from `SECRET_KEY`",
    help="Mixed with phones' install ids to pick their staged-rollout bucket; changing it (or `SECRET_KEY` while "
         "it is unset) reshuffles every device. Set it to keep the buckets through a `SECRET_KEY` rotation.") or \
    hmac.new(SECRET_KEY.encode(), b"crowdlens.training.rollout-salt", hashlib.sha256).hexdigest()
TRAINING_FIELD_ACCURACY_MIN_SAMPLES = env_int("TRAINING_FIELD_ACCURACY_MIN_SAMPLES", 30, minimum=1,
    help="Reviewed photos with the phone's own prediction needed before the newsletter quotes a version's field "
         "accuracy.")
TRAINING_VARIANTS = tuple(env_list("TRAINING_VARIANTS", list(TRAINING_VARIANT_NAMES),
    help="Variants exported, a comma-separated subset of `float32,float16,dynamic,int8,coreml` that includes the "
         "gate variant; `coreml` is the zipped Core ML package for iOS."))
if not TRAINING_VARIANTS or set(TRAINING_VARIANTS) - set(TRAINING_VARIANT_NAMES) or TRAINING_GATE_VARIANT not in TRAINING_VARIANTS:
    raise ImproperlyConfigured(
        f"TRAINING_VARIANTS must be a comma-separated subset of {list(TRAINING_VARIANT_NAMES)} "
        f"that includes TRAINING_GATE_VARIANT ({TRAINING_GATE_VARIANT}), got {TRAINING_VARIANTS!r}"
    )
TRAINING_DEFAULT_VARIANT = env_choice("TRAINING_DEFAULT_VARIANT", "auto", {"auto", *TRAINING_VARIANTS},
                                      order=["auto", "the variants in `TRAINING_VARIANTS`"],
                                      help="Manifest variant when a phone asks for none (`?variant=` absent). `auto`: "
                                           "each version's own, chosen by evidence when it is published (the smallest "
                                           "file shown within `TRAINING_INT8_MAX_DROP` of float32; docs/training.md).")
TRAINING_MIN_APP_VERSION = env_str("TRAINING_MIN_APP_VERSION", "1.0.0",
    help="`min_app_version` in manifests.")
TRAINING_STALE_AFTER = env_int("TRAINING_STALE_AFTER", 900, minimum=10,
    help="Seconds without a heartbeat before a run counts as dead (marked failed; the next run proceeds).")
TRAINING_HEARTBEAT_SECONDS = env_int("TRAINING_HEARTBEAT_SECONDS", 30, minimum=1,
    help="Heartbeat interval of a running run, seconds.")
TRAINING_REQUEST_POLL_SECONDS = env_int("TRAINING_REQUEST_POLL_SECONDS", 30, minimum=5,
    help="How often the scheduler starts runs requested in the admin (`TRAINING_WORKER=local`), seconds.")
TRAINING_FINE_TUNE_MIN_PER_CLASS = env_opt_int("TRAINING_FINE_TUNE_MIN_PER_CLASS", minimum=1, shown=_TUNED,
    help="Photos per class from which a run fine-tunes the top of the backbone, not only a new head.")
TRAINING_FINE_TUNE_LAYERS = env_opt_int("TRAINING_FINE_TUNE_LAYERS", minimum=0, shown=_TUNED,
    help="Top MobileNetV2 blocks (of 16) unfrozen for fine-tuning (BatchNormalization stays frozen; 0: head only).")
TRAINING_EPOCHS_HEAD = env_opt_int("TRAINING_EPOCHS_HEAD", minimum=1, shown=_TUNED,
    help="Epochs training the new head.")
TRAINING_EPOCHS_FINE_TUNE = env_opt_int("TRAINING_EPOCHS_FINE_TUNE", minimum=0, shown=_TUNED,
    help="Epochs fine-tuning.")
TRAINING_BATCH_SIZE = env_opt_int("TRAINING_BATCH_SIZE", minimum=1, shown=_TUNED,
    help="Batch size.")
TRAINING_LEARNING_RATE_HEAD = env_opt_float("TRAINING_LEARNING_RATE_HEAD", minimum=0.0, shown=_TUNED,
    help="Learning rate of the head phase.")
TRAINING_LEARNING_RATE_FINE_TUNE = env_opt_float("TRAINING_LEARNING_RATE_FINE_TUNE", minimum=0.0, shown=_TUNED,
    help="Learning rate of the fine-tuning phase.")
TRAINING_AUGMENT = env_bool("TRAINING_AUGMENT", True,
    help="Augmentation during training.")
TRAINING_AUGMENT_VIEWS = env_opt_int("TRAINING_AUGMENT_VIEWS", minimum=0, shown=_TUNED,
    help="Augmented views per photo in the training set.")
TRAINING_EARLY_STOPPING_PATIENCE = env_opt_int("TRAINING_EARLY_STOPPING_PATIENCE", minimum=1, shown=_TUNED,
    help="Epochs without improvement before a phase stops early.")
TRAINING_PRUNE_SPARSITY = env_float("TRAINING_PRUNE_SPARSITY", 0.0, minimum=0.0, maximum=0.95,
    help="Target sparsity of magnitude pruning (0: no pruning).")
TRAINING_INT8_CALIBRATION_SAMPLES = env_opt_int("TRAINING_INT8_CALIBRATION_SAMPLES", minimum=1, shown=_TUNED,
    help="Photos that calibrate the int8 quantization.")
TRAINING_INT8_CALIBRATION_DRAWS = env_opt_int("TRAINING_INT8_CALIBRATION_DRAWS", minimum=1, shown=_TUNED,
    help="int8 calibrations tried, each on another draw of training photos (the first as before issue 17, the "
         "others through the resizes a phone's SDK makes); the file closest to the float model is kept. 1: the "
         "first alone (docs/training-ml.md).")
TRAINING_SEED = env_int("TRAINING_SEED", 1234,
    help="Seeds of the splits' shuffles, augmentation and initialisation.")
TRAINING_AUGMENT_FLIP = env_bool("TRAINING_AUGMENT_FLIP", True,
    help="Mirror images in augmentation (turn off for labels with text or handedness).")
TRAINING_MIXUP_ALPHA = env_opt_float("TRAINING_MIXUP_ALPHA", minimum=0.0, shown=_TUNED,
    help="Mixup's alpha (0: no mixup).")
TRAINING_TF_THREADS = env_int("TRAINING_TF_THREADS", 0, minimum=0,
    help="TensorFlow intra-op threads (0: TensorFlow's own TF_NUM_INTRAOP_THREADS when set, else min(4, CPUs)).")
TRAINING_EMBEDDINGS = env_bool("TRAINING_EMBEDDINGS", True,
    help="After training, cache pooled embeddings of new photos for the challenges' novelty bonus (one extra "
         "forward pass per new photo).")
TRAINING_CV_BELOW_TEST_PHOTOS = env_opt_int("TRAINING_CV_BELOW_TEST_PHOTOS", minimum=0, shown=_TUNED, help=
    "Below this many test photos the run estimates accuracy by k-fold cross-validation over all approved photos and "
    "trains the published model on all of them.")
TRAINING_CV_FOLDS = env_opt_int("TRAINING_CV_FOLDS", minimum=2, shown=_TUNED, help=
    "Folds of that cross-validation.")
TRAINING_PUBLISH_MIN_ACCURACY = env_opt_float("TRAINING_PUBLISH_MIN_ACCURACY", minimum=0.0, maximum=1.0,
    shown="unset: the largest label's share (better than chance)", help=
    "A model is published only when its accuracy interval's lower bound is above this (0 to 1).")
TRAINING_WORKER = env_choice("TRAINING_WORKER", "local", {"local", "remote"}, order=["local", "remote"],
    help="`local`: the scheduler host trains. `remote`: the nightly job and the admin's button only queue a run, "
         "and `manage.py trainworker` on a GPU host takes it. Set it alike on every host.")
TRAINING_WORKER_POLL_SECONDS = env_int("TRAINING_WORKER_POLL_SECONDS", 15, minimum=1,
    help="How often a `trainworker` looks for a queued run, seconds.")
PROCESS_HEARTBEAT_SECONDS = env_int("PROCESS_HEARTBEAT_SECONDS", 30, minimum=1,
    help="How often the scheduler and each `trainworker` write their heartbeat (admin: Training → Process "
         "heartbeats; silent for three intervals = not alive), seconds.")
# --- challenges -----------------------------------------------------------
# See docs/challenges.md. Day boundaries are in TIME_ZONE.
env.section("Challenges, points and leaderboards")
CHALLENGE_ROTATE_AT = env_time("CHALLENGE_ROTATE_AT", "00:00",
    help="When each day's challenge opens and the rotate job runs, in `TIME_ZONE`.")
CHALLENGE_NO_REPEAT_DAYS = env_int("CHALLENGE_NO_REPEAT_DAYS", 7, minimum=0,
    help="No label gets a second challenge within this many days (0: no rule).")
CHALLENGE_BONUS_POINTS = env_int("CHALLENGE_BONUS_POINTS", 20, minimum=0,
    help="Default bonus of a new challenge.")
POINTS_PHOTO_APPROVED = env_int("POINTS_PHOTO_APPROVED", 10, minimum=0,
    help="Points per approved photo.")
POINTS_FEATURED = env_int("POINTS_FEATURED", 25, minimum=0,
    help="Points for a photo featured by staff (photo of the day).")
POINTS_PER_VOTE = env_int("POINTS_PER_VOTE", 2, minimum=0,
    help="Points per vote received.")
POINTS_NOVELTY_MAX = env_int("POINTS_NOVELTY_MAX", 15, minimum=0,
    help="Novelty bonus of the photo farthest from its label's centre (0: off).")
NOVELTY_PERCENTILE = env_float("NOVELTY_PERCENTILE", 0.75, minimum=0.0, maximum=0.99,
    help="Photos farther from their label's centre than this share of its photos earn a novelty bonus.")
NOVELTY_MIN_PHOTOS = env_int("NOVELTY_MIN_PHOTOS", 10, minimum=2,
    help="Photos with embeddings a label needs before novelty is scored.")
LEADERBOARD_MAX_PAGE_SIZE = env_int("LEADERBOARD_MAX_PAGE_SIZE", 100, minimum=1,
    help="Largest `page_size` of the leaderboard API.")
CHALLENGE_COMPACT_EVERY_MINUTES = env_int("CHALLENGE_COMPACT_EVERY_MINUTES", 10, minimum=1, maximum=59,
    help="How often, in minutes, `challenges_compact` folds rank counts and opens today's challenge if none is "
         "open.")
# An approved photo the model in service got wrong (its own server-side prediction, never the phone's claim).
POINTS_STUMPED = env_int("POINTS_STUMPED", 15, minimum=0, help=
    "Bonus for an approved photo whose label the model in service got wrong (the server's own prediction for "
    "the stored photo, never the phone's claim).")
PHOTOS_PREDICT_EVERY_MINUTES = env_int("PHOTOS_PREDICT_EVERY_MINUTES", 5, minimum=1, maximum=59, help=
    "How often the scheduler runs `photos_predict`: the model in service predicts new photos (the stumped bonus) "
    "and guesses the pending photos it has not guessed yet (the review queue), in LiteRT, in the scheduler's "
    "subprocess, never in the web process.")
# --- newsletter -----------------------------------------------------------
env.section("Newsletter")
# Editions are composed for each period and sent by `manage.py newsletter_send`,
# which the scheduler runs every hour: it composes the edition once its slot
# (weekday + hour, in TIME_ZONE) has passed, sends editions that are due, and
# retries temporary failures whose back-off has elapsed.
NEWSLETTER_FREQUENCY = env_choice("NEWSLETTER_FREQUENCY", "weekly", {"weekly", "daily"}, order=["weekly", "daily"],
    help="How often an edition is composed.")
_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NEWSLETTER_WEEKDAY = env_choice("NEWSLETTER_WEEKDAY", "mon", set(_WEEKDAYS), order=_WEEKDAYS,
    help="Day of the weekly edition, in `TIME_ZONE`.")
NEWSLETTER_HOUR = env_int("NEWSLETTER_HOUR", 9, minimum=0, maximum=23,
    help="Hour of the edition, in `TIME_ZONE`.")
NEWSLETTER_REQUIRE_APPROVAL = env_bool("NEWSLETTER_REQUIRE_APPROVAL", False,
    help="`true`: a composed edition waits until staff release it in the admin; `false`: it goes out on schedule.")
NEWSLETTER_SKIP_EMPTY = env_bool("NEWSLETTER_SKIP_EMPTY", True,
    help="A period with no approved public photo, no challenge winner and no new model gets no edition.")
NEWSLETTER_FROM_EMAIL = env_str("NEWSLETTER_FROM_EMAIL", DEFAULT_FROM_EMAIL, shown="`DEFAULT_FROM_EMAIL`",
    help="Sender of newsletter emails.")
NEWSLETTER_UNSUBSCRIBE_MAILTO = env_str("NEWSLETTER_UNSUBSCRIBE_MAILTO",
    help="Optional `mailto:` target added to `List-Unsubscribe`.")  # optional mailto: in List-Unsubscribe
NEWSLETTER_CONFIRM_MAX_AGE_DAYS = env_int("NEWSLETTER_CONFIRM_MAX_AGE_DAYS", 7, minimum=1,
    help="Days a confirmation link works.")
NEWSLETTER_CONFIRM_RESEND_SECONDS = env_int("NEWSLETTER_CONFIRM_RESEND_SECONDS", 600, minimum=0,
    help="At most one confirmation email per address in this many seconds.")
NEWSLETTER_BEST_PHOTOS = env_int("NEWSLETTER_BEST_PHOTOS", 6, minimum=1,
    help="Photos per edition.")
NEWSLETTER_NEEDED_LABELS = env_int("NEWSLETTER_NEEDED_LABELS", 3, minimum=1,
    help="Labels in the edition's Please photograph next.")
NEWSLETTER_BATCH_SIZE = env_int("NEWSLETTER_BATCH_SIZE", 100, minimum=1,
    help="Deliveries a sender claims at a time.")
NEWSLETTER_CLAIM_LEASE_SECONDS = env_int("NEWSLETTER_CLAIM_LEASE_SECONDS", 600, minimum=1,
    help="Seconds after which another sender may take over a claimed delivery.")
NEWSLETTER_MAX_ATTEMPTS = env_int("NEWSLETTER_MAX_ATTEMPTS", 5, minimum=1,
    help="Tries per delivery for temporary SMTP failures.")
NEWSLETTER_RETRY_BASE_SECONDS = env_int("NEWSLETTER_RETRY_BASE_SECONDS", 60, minimum=0,
    help="First back-off after a temporary failure, seconds; it doubles each attempt.")
NEWSLETTER_RETRY_MAX_SECONDS = env_int("NEWSLETTER_RETRY_MAX_SECONDS", 3600, minimum=0,
    help="Longest back-off, seconds.")
NEWSLETTER_SEND_MAX_WAIT_SECONDS = env_int("NEWSLETTER_SEND_MAX_WAIT_SECONDS", 900, minimum=0,
    help="How long one send run waits for retries that come due, seconds.")
NEWSLETTER_MAX_FAILURES = env_int("NEWSLETTER_MAX_FAILURES", 3, minimum=1,
    help="Failed editions in a row before an address stops being mailed.")
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["newsletter_subscribe"] = env_str("NEWSLETTER_SUBSCRIBE_RATE", "20/hour",
    help="Per-client limit on the subscribe API and form (DRF rate syntax).")

# --- abuse hardening (see docs/running-in-public.md and docs/decisions.md) --
env.section("Sign-in lock-out")
INSTALLED_APPS += [
    "config.apps.CrowdlensConfig",  # migrate creates the database cache's table
    "axes",
    "csp",
]
MIDDLEWARE += [
    "config.csp.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # after AuthenticationMiddleware: turns a lock-out into its answer
]

# Sign-in brute force: django-axes records failures in the database (shared by
# every worker and host), per account and client address together and per client
# address alone, and locks each out after LOGIN_FAILURE_LIMIT (resp.
# LOGIN_CLIENT_FAILURE_LIMIT) failures for a cool-off that doubles with every
# further round of failures remembered (config.lockout).
# Its backend comes first, so every authenticate() given the request is checked:
# the admin, the web sign-in and the API token endpoint.
AUTHENTICATION_BACKENDS = [
    "config.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1,
    help="Failed sign-ins (admin, web sign-in, API token) for one account, or from one client address, before a "
         "lock-out.")
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1,
    help="The first lock-out, minutes; each further round of `LOGIN_FAILURE_LIMIT` failures doubles the next one.")
LOGIN_LOCKOUT_MAX_MINUTES = env_int("LOGIN_LOCKOUT_MAX_MINUTES", 24 * 60, minimum=1,
    help="The longest lock-out, minutes, and how long failures are remembered.")
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
# An account from one client, and one client whatever the accounts: never an account for every
# client, or anyone could keep its owner out. config.lockout.LockoutHandler gives each its own limit.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "config.lockout.LockoutHandler"
AXES_COOLOFF_TIME = "config.lockout.cool_off"
AXES_USE_ATTEMPT_EXPIRATION = True  # each record expires on its own (the cool-off differs per client)
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # the memory the growing cool-off counts
AXES_RESET_ON_SUCCESS = False  # a success must not wipe a client's failures against other accounts
# Attempts while locked out are refused without being counted: the lock ends
# when the page said it would, even for an owner who kept trying.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "config.lockout.lockout_response"
# Not verbose: no "AXES: BEGIN" INFO line from every process start (each scheduled command is one);
# failures and lock-outs are still logged, naming the username and address they count against.
AXES_VERBOSE = False
# axes keeps a row per failed and per successful sign-in; config/jobs.py prunes
# both nightly. Failures must outlive the lock-out's memory (the growing cool-off counts them).
LOGIN_LOG_KEEP_DAYS = env_int("LOGIN_LOG_KEEP_DAYS", 30, minimum=1,
    help="Days the records of failed and successful sign-ins are kept (pruned nightly at 04:10 and 04:15 by the "
         "scheduler); must cover `LOGIN_LOCKOUT_MAX_MINUTES`.")
if LOGIN_LOG_KEEP_DAYS * 24 * 60 < LOGIN_LOCKOUT_MAX_MINUTES:
    raise ImproperlyConfigured(f"LOGIN_LOG_KEEP_DAYS ({LOGIN_LOG_KEEP_DAYS}) must cover LOGIN_LOCKOUT_MAX_MINUTES "
                               f"({LOGIN_LOCKOUT_MAX_MINUTES}), the failures a lock-out's length counts")

# Content-Security-Policy on every response (django-csp). Scripts only from our
# own static files (the camera page's included); images may also come from S3
# (presigned thumbnail/model URLs) and from blob: (the camera's preview).
from csp.constants import NONCE, NONE, SELF  # noqa: E402

_img_src = [SELF, "data:", "blob:"]
if S3_BUCKET:
    from urllib.parse import urlsplit as _urlsplit

    _img_src.append(f"{_urlsplit(S3_ENDPOINT_URL).scheme}://{_urlsplit(S3_ENDPOINT_URL).netloc}" if S3_ENDPOINT_URL
                    else f"https://s3.{S3_REGION}.amazonaws.com")
# The camera page downloads the published model itself (static/js/model.js): from S3 when the
# manifest's download_url is presigned there (issue 19).
_connect_src = [SELF, *_img_src[3:]]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": _img_src,
        "connect-src": _connect_src,
        "media-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
env.section("HTTPS, cookies and Content-Security-Policy")
if env_bool("CSP_REPORT_ONLY", False,
    help="Send the Content-Security-Policy as `Content-Security-Policy-Report-Only` (trying changes on a live "
         "site)."):  # try a stricter policy on a live site without breaking it
    CONTENT_SECURITY_POLICY_REPORT_ONLY, CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY, None

# --- accounts (see docs/running-in-public.md) ----------------------------------
env.section("Security and abuse limits")
# The lock by client alone (every account tried from one address) has its own,
# larger limit: many volunteers may share one address (a school, a carrier's NAT).
LOGIN_CLIENT_FAILURE_LIMIT = env_int("LOGIN_CLIENT_FAILURE_LIMIT", 3 * LOGIN_FAILURE_LIMIT, minimum=1,
    shown="3 × `LOGIN_FAILURE_LIMIT`",
    help="Failed sign-ins from one client address, whatever the accounts, before that address is locked out "
         "(an account is locked only for the address its failures came from).")
# Staff's second factor (django-otp; config.two_factor): accounts with a device always sign in with its code;
# with STAFF_REQUIRE_2FA every staff account needs one (enrol first: manage.py staff_2fa_setup NAME).
STAFF_REQUIRE_2FA = env_bool("STAFF_REQUIRE_2FA", False,
    help="`true`: every staff account must sign in with a second factor (TOTP app or recovery code; enrol with "
         "`manage.py staff_2fa_setup NAME`). Accounts with a device always need its code.")
INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static"]
MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
                  "django_otp.middleware.OTPMiddleware")
AUTHENTICATION_BACKENDS[AUTHENTICATION_BACKENDS.index("django.contrib.auth.backends.ModelBackend")] = \
    "config.two_factor.SecondFactorBackend"
OTP_TOTP_ISSUER = "Crowdlens"

# --- curation at crowd scale (see docs/review.md) -----------------------------------
env.section("Curation: community verification, model guesses, label audit")
COMMUNITY_REVIEW = env_bool("COMMUNITY_REVIEW", True, help=
    "Volunteers with enough approved photos verify other volunteers' pending photos, blind (`false`: staff only).")
COMMUNITY_REVIEW_MIN_APPROVED = env_int("COMMUNITY_REVIEW_MIN_APPROVED", 5, minimum=1, help=
    "Approved photos of their own a volunteer needs before verifying others'.")
COMMUNITY_REVIEW_MIN_VOTES = env_int("COMMUNITY_REVIEW_MIN_VOTES", 3, minimum=1, help=
    "Counted verdicts a photo needs before the crowd decides it.")
COMMUNITY_REVIEW_AGREEMENT = env_float("COMMUNITY_REVIEW_AGREEMENT", 2 / 3, minimum=0.5, maximum=0.99,
    shown="`0.667` (2/3)", help=
    "Share of counted verdicts that must agree (more than this) for a community approval; otherwise the photo "
    "goes to staff first, marked disputed, with the label the crowd suggests.")
COMMUNITY_REVIEW_GOLD_EVERY = env_int("COMMUNITY_REVIEW_GOLD_EVERY", 5, minimum=2, help=
    "About one photo in this many that a verifier is shown is gold: one staff already decided.")
COMMUNITY_REVIEW_GOLD_MIN = env_int("COMMUNITY_REVIEW_GOLD_MIN", 5, minimum=1, help=
    "Gold verdicts a verifier gives before their gold agreement is judged.")
COMMUNITY_REVIEW_GOLD_AGREEMENT = env_float("COMMUNITY_REVIEW_GOLD_AGREEMENT", 0.7, minimum=0.0, maximum=1.0, help=
    "A verifier agreeing with staff on fewer of their gold photos than this stops counting until it recovers.")
POINTS_VERIFY = env_int("POINTS_VERIFY", 1, minimum=0, help=
    "Points for a verdict that matches the photo's final decision (never for gold or unsure verdicts).")
if env_opt_int("REVIEW_GUESSES_EVERY_MINUTES", help=
        "Deprecated and no longer read: the review queue's guesses come from the one `photos_predict` job, every "
        "`PHOTOS_PREDICT_EVERY_MINUTES`. Set, it only prints a warning at start-up.") is not None:
    warnings.warn("REVIEW_GUESSES_EVERY_MINUTES is no longer read: the review queue's guesses come from the "
                  "photos_predict job, every PHOTOS_PREDICT_EVERY_MINUTES (default 5); unset it.", FutureWarning,
                  stacklevel=1)
REVIEW_AGREE_THRESHOLDS = [float(x) for x in env_list("REVIEW_AGREE_THRESHOLDS", ["0.8", "0.9", "0.95"], help=
    "Confidences the queue offers for \"approve the N photos where the model agrees at ≥ p\", comma-separated.")]
LABEL_AUDIT_AT = env_time("LABEL_AUDIT_AT", "04:00", help=
    "When the nightly label audit runs (after the night's training), in `TIME_ZONE`.")
LABEL_AUDIT_MAX_PER_NIGHT = env_int("LABEL_AUDIT_MAX_PER_NIGHT", 50, minimum=0, help=
    "Most likely mislabelled approved photos the audit sends back to the review queue each night.")
LABEL_AUDIT_FOLDS = env_int("LABEL_AUDIT_FOLDS", 5, minimum=2, help=
    "Folds of the audit's out-of-sample class probabilities (cross-validation over the cached features).")
LABEL_AUDIT_DUPLICATE_SIMILARITY = env_float("LABEL_AUDIT_DUPLICATE_SIMILARITY", 0.985, minimum=0.5, maximum=1.0,
    help="Cosine similarity of features above which photos of different volunteers count as near-duplicates.")

# --- read outside this file ------------------------------------------------------------------------------------------
# Declared here so that docs/reference/settings.md lists every variable Crowdlens reads, in one place
# (tests/test_settings_reference.py checks that these readers name no other).
env.section("Read by other programs")
declare("RUN_ADDRESS", type="string", default="127.0.0.1:8000", read_by="deploy/run-local.sh (`make run`)", help=
        "Address `make run` serves on. `make run` also sets `SITE_URL` to `http://RUN_ADDRESS` when `SITE_URL` is "
        "unset; a command run by hand in another terminal needs the same `SITE_URL` exported.")
declare("CROWDLENS_REVIEWER_PASSWORD", type="string", default="", read_by="`manage.py reviewers_group --create`", help=
        "The password of the one reviewer account `--create` makes, for scripts (otherwise the command asks; the "
        "password validators apply).")
declare("GUNICORN_BIND", type="string", default="127.0.0.1:8000", read_by="deploy/gunicorn.conf.py",
        help="Address gunicorn listens on.")
declare("GUNICORN_WORKERS", type="integer", default="", shown="2 × CPUs + 1", read_by="deploy/gunicorn.conf.py",
        help="gunicorn worker processes.")
declare("GUNICORN_THREADS", type="integer", default=2, read_by="deploy/gunicorn.conf.py",
        help="Threads per gunicorn worker (gthread).")
declare("GUNICORN_TIMEOUT", type="integer", default=60, read_by="deploy/gunicorn.conf.py",
        help="Seconds a request may take before gunicorn restarts its worker (a 25 MB upload on a slow phone link).")
declare("GUNICORN_KEEPALIVE", type="integer", default=75, read_by="deploy/gunicorn.conf.py",
        help="Seconds an idle connection from nginx stays open: longer than nginx reuses it (60 s), so a request sent "
             "on it never meets a closing socket.")
