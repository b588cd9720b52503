"""Crowdlens settings: read only from environment variables (see README.md).

Defaults run on a laptop with nothing else installed: SQLite and local files
under ./var/, console email. Production sets DATABASE_URL (PostgreSQL),
S3_BUCKET, SECRET_KEY and DEBUG=false.

Over 400 lines on purpose: every setting of every app is read here, in one place, each with its
validation (healthchecks' habit); the sections follow README's settings tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_float, env_int, env_list, env_str, env_time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tensorflow-model-optimization needs tf_keras

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CROWDLENS_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# `make run` writes a generated key to var/secret_key; every process of the
# installation (a command run by hand in a second terminal included) reads the
# same file, so links one signs (newsletter confirm/unsubscribe) work in all.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text(encoding="utf-8").strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when DEBUG is off, or {SECRET_KEY_FILE} must exist (`make run` writes it); "
            "for local development set DEBUG=true")
    SECRET_KEY = "insecure-development-key-only-for-debug"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
TIME_ZONE = env_str("TIME_ZONE", "UTC")
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
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'crowdlens.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0))
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent uploads from several workers: WAL lets readers run beside the
    # writer, IMMEDIATE transactions take the write lock up front (no
    # deadlock-prone lock upgrades), and the busy timeout waits instead of
    # answering "database is locked".
    _db["OPTIONS"] = {
        "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30, minimum=1),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- clients and shared counters (see docs/operations.md) ------------------
# How many reverse proxies in front of the site append to X-Forwarded-For.
# 0: the socket's peer is the client and X-Forwarded-For is ignored (anyone can
# forge it). config.client_ip holds the rule; the throttles and django-axes call it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# Throttle counters, lock-outs and the like must be shared by every worker and
# host, or each of N workers lets the whole rate through. Without Redis the
# database holds them (table created by `migrate`, see config.apps).
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "crowdlens")}}
else:
    # Past MAX_ENTRIES Django culls a third of the rows, live counters included
    # (resetting those clients' limits): far above what a site without Redis sees.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "crowdlens_cache",
                          "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "crowdlens"),
                          "OPTIONS": {"MAX_ENTRIES": env_int("CACHE_MAX_ENTRIES", 100_000, minimum=1000)}}}

# --- files ----------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # never served directly: files go through permission-checking views
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
WHITENOISE_USE_FINDERS = True  # serve app static files even before collectstatic

S3_BUCKET = env_str("S3_BUCKET")
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL") or None
S3_REGION = env_str("S3_REGION", "us-east-1")
S3_ACCESS_KEY_ID = env_str("S3_ACCESS_KEY_ID") or None
S3_SECRET_ACCESS_KEY = env_str("S3_SECRET_ACCESS_KEY") or None
S3_PRESIGN_TTL = env_int("S3_PRESIGN_TTL", 3600, minimum=1)
S3_CONNECT_TIMEOUT = env_float("S3_CONNECT_TIMEOUT", 5.0, minimum=0.1)
S3_READ_TIMEOUT = env_float("S3_READ_TIMEOUT", 30.0, minimum=0.1)
S3_MAX_ATTEMPTS = env_int("S3_MAX_ATTEMPTS", 3, minimum=1)

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
PHOTO_MAX_BYTES = env_int("PHOTO_MAX_BYTES", 25 * 1024 * 1024, minimum=1024)
PHOTO_MAX_PIXELS = env_int("PHOTO_MAX_PIXELS", 50_000_000, minimum=10_000)
PHOTO_TRAINING_SHORT_SIDE = env_int("PHOTO_TRAINING_SHORT_SIDE", 256, minimum=32)
PHOTO_THUMBNAIL_SIZE = env_int("PHOTO_THUMBNAIL_SIZE", 480, minimum=64)
PHOTO_NEAR_DUPLICATE_DISTANCE = env_int("PHOTO_NEAR_DUPLICATE_DISTANCE", 6, minimum=0)
PHOTO_UPLOAD_RATE = env_str("PHOTO_UPLOAD_RATE", "120/hour")
LABEL_PROTOTYPE_TARGET = env_int("LABEL_PROTOTYPE_TARGET", 30, minimum=1)
LABEL_PRODUCTION_TARGET = env_int("LABEL_PRODUCTION_TARGET", 200, minimum=1)
# Requests bigger than this are refused from their Content-Length, before the body is read.
REQUEST_MAX_BYTES = PHOTO_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads spool to a temporary file
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["collector.uploads.LimitedTemporaryFileUploadHandler"]

# --- email ----------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Crowdlens <crowdlens@localhost>")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)

# --- API ------------------------------------------------------------------
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
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1),
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"uploads": PHOTO_UPLOAD_RATE, "anon_signup": env_str("SIGNUP_RATE", "30/hour")},
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

# --- HTTPS, cookies, Content-Security-Policy (see docs/operations.md) -------
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto, with an https
# SITE_URL: believe the proxy's scheme, send HSTS, redirect http to https
# (the health checks answer on http too: load balancers probe plainly).
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
HTTPS_SITE = BEHIND_TLS_PROXY and SITE_URL.startswith("https://")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = HTTPS_SITE
SECURE_REDIRECT_EXEMPT = [r"^healthz(/.*)?$"]
HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
SECURE_HSTS_SECONDS = HSTS_SECONDS if HTTPS_SITE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)  # preloading is hard to undo: the operator opts in
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", SITE_URL.startswith("https://"))
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if HTTPS_SITE:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # APScheduler's INFO lines ("Adding job tentatively", "Running job ..." every
    # 30 s for the request poll) say nothing an operator needs; the scheduler
    # logs each job it starts and how it ended itself.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "apscheduler": {"level": "WARNING"}},
}

# --- scheduler -----------------------------------------------------------
# The one `manage.py runscheduler` process runs each of these management
# commands in its own subprocess at the given wall-clock time in TIME_ZONE.
# Each app appends its jobs below. Keys: id, command (argv list after
# manage.py), hour, minute, and optionally day_of_week ("mon", "*", ...).
SCHEDULER_JOBS: list[dict] = []
SCHEDULER_MISFIRE_GRACE = env_int("SCHEDULER_MISFIRE_GRACE", 6 * 3600, minimum=1)

# Housekeeping: storage_sweep nightly, report only unless told to delete
# (then only files older than the age rule; uploads in flight are younger).
STORAGE_SWEEP_AT = env_time("STORAGE_SWEEP_AT", "03:30")
STORAGE_SWEEP_DELETE = env_bool("STORAGE_SWEEP_DELETE", False)
STORAGE_SWEEP_MIN_AGE_HOURS = env_float("STORAGE_SWEEP_MIN_AGE_HOURS", 24.0, minimum=1.0)
SCHEDULER_JOBS.append({
    "id": "storage-sweep",
    "command": ["storage_sweep", "--min-age-hours", f"{STORAGE_SWEEP_MIN_AGE_HOURS:g}", "--verbosity", "0",
                *(["--delete"] if STORAGE_SWEEP_DELETE else [])],
    "hour": STORAGE_SWEEP_AT[0], "minute": STORAGE_SWEEP_AT[1],
})

# --- training (issue 3) ---------------------------------------------------
# See docs/training.md. Knobs left unset (None) take training.ml.HParams' tuned defaults.
def _env_opt_int(name: str, minimum: int | None = None) -> int | None:
    return env_int(name, 0, minimum=minimum) if os.environ.get(name, "").strip() else None


def _env_opt_float(name: str, minimum: float | None = None, maximum: float | None = None) -> float | None:
    return env_float(name, 0.0, minimum=minimum, maximum=maximum) if os.environ.get(name, "").strip() else None


TRAINING_TFLITE_VARIANTS = ("float32", "float16", "dynamic", "int8")
# coreml: the zipped Core ML package for iOS, converted from the same model, not evaluated (docs/training-ml.md).
TRAINING_VARIANT_NAMES = (*TRAINING_TFLITE_VARIANTS, "coreml")
TRAINING_ALPHA = env_float("TRAINING_ALPHA", 0.35, minimum=0.1, maximum=1.4)
TRAINING_INPUT_SIZE = env_int("TRAINING_INPUT_SIZE", 224, minimum=32)
TRAINING_BASE_WEIGHTS = env_str("TRAINING_BASE_WEIGHTS", "imagenet").strip() or "imagenet"
TRAINING_NIGHTLY_AT = env_time("TRAINING_NIGHTLY_AT", "02:00")
TRAINING_MIN_PHOTOS_PER_LABEL = env_int("TRAINING_MIN_PHOTOS_PER_LABEL", 5, minimum=1)
TRAINING_VAL_FRACTION = env_float("TRAINING_VAL_FRACTION", 0.15, minimum=0.0, maximum=0.5)
TRAINING_TEST_FRACTION = env_float("TRAINING_TEST_FRACTION", 0.15, minimum=0.01, maximum=0.5)
TRAINING_GATE_MARGIN = env_float("TRAINING_GATE_MARGIN", 1.0, minimum=0.0, maximum=100.0)  # accuracy points
TRAINING_GATE_VARIANT = env_choice("TRAINING_GATE_VARIANT", "float32", set(TRAINING_TFLITE_VARIANTS))
TRAINING_INT8_MAX_DROP = env_float("TRAINING_INT8_MAX_DROP", 1.0, minimum=0.0, maximum=100.0)  # accuracy points
# The gate's paired (exact McNemar) test: a drop beyond a margin holds a model back only when p < this,
# so a small test split is not held back for a photo or two (both rules: int8 vs float32, candidate vs in service).
TRAINING_GATE_ALPHA = env_float("TRAINING_GATE_ALPHA", 0.05, minimum=0.0, maximum=1.0)
# Mixed with a phone's install id to pick its staged-rollout bucket; changing it reshuffles every device.
TRAINING_ROLLOUT_SALT = env_str("TRAINING_ROLLOUT_SALT", "crowdlens-rollout")
# Field accuracy is quoted (newsletter) only from this many reviewed photos the phone had classified.
TRAINING_FIELD_ACCURACY_MIN_SAMPLES = env_int("TRAINING_FIELD_ACCURACY_MIN_SAMPLES", 30, minimum=1)
TRAINING_VARIANTS = tuple(env_list("TRAINING_VARIANTS", list(TRAINING_VARIANT_NAMES)))
if not TRAINING_VARIANTS or set(TRAINING_VARIANTS) - set(TRAINING_VARIANT_NAMES) or TRAINING_GATE_VARIANT not in TRAINING_VARIANTS:
    raise ImproperlyConfigured(
        f"TRAINING_VARIANTS must be a comma-separated subset of {list(TRAINING_VARIANT_NAMES)} "
        f"that includes TRAINING_GATE_VARIANT ({TRAINING_GATE_VARIANT}), got {TRAINING_VARIANTS!r}"
    )
# auto: each version's own default, chosen by evidence when it is published (issue 17; docs/training.md).
TRAINING_DEFAULT_VARIANT = env_choice("TRAINING_DEFAULT_VARIANT", "auto", {"auto", *TRAINING_VARIANTS})
TRAINING_MIN_APP_VERSION = env_str("TRAINING_MIN_APP_VERSION", "1.0.0")
TRAINING_STALE_AFTER = env_int("TRAINING_STALE_AFTER", 900, minimum=10)  # seconds without a heartbeat
TRAINING_HEARTBEAT_SECONDS = env_int("TRAINING_HEARTBEAT_SECONDS", 30, minimum=1)
TRAINING_REQUEST_POLL_SECONDS = env_int("TRAINING_REQUEST_POLL_SECONDS", 30, minimum=5)
TRAINING_FINE_TUNE_MIN_PER_CLASS = _env_opt_int("TRAINING_FINE_TUNE_MIN_PER_CLASS", minimum=1)
TRAINING_FINE_TUNE_LAYERS = _env_opt_int("TRAINING_FINE_TUNE_LAYERS", minimum=0)
TRAINING_EPOCHS_HEAD = _env_opt_int("TRAINING_EPOCHS_HEAD", minimum=1)
TRAINING_EPOCHS_FINE_TUNE = _env_opt_int("TRAINING_EPOCHS_FINE_TUNE", minimum=0)
TRAINING_BATCH_SIZE = _env_opt_int("TRAINING_BATCH_SIZE", minimum=1)
TRAINING_LEARNING_RATE_HEAD = _env_opt_float("TRAINING_LEARNING_RATE_HEAD", minimum=0.0)
TRAINING_LEARNING_RATE_FINE_TUNE = _env_opt_float("TRAINING_LEARNING_RATE_FINE_TUNE", minimum=0.0)
TRAINING_AUGMENT = env_bool("TRAINING_AUGMENT", True)
TRAINING_AUGMENT_VIEWS = _env_opt_int("TRAINING_AUGMENT_VIEWS", minimum=0)
TRAINING_EARLY_STOPPING_PATIENCE = _env_opt_int("TRAINING_EARLY_STOPPING_PATIENCE", minimum=1)
TRAINING_PRUNE_SPARSITY = env_float("TRAINING_PRUNE_SPARSITY", 0.0, minimum=0.0, maximum=0.95)
TRAINING_INT8_CALIBRATION_SAMPLES = _env_opt_int("TRAINING_INT8_CALIBRATION_SAMPLES", minimum=1)
TRAINING_SEED = env_int("TRAINING_SEED", 1234)
TRAINING_AUGMENT_FLIP = env_bool("TRAINING_AUGMENT_FLIP", True)
TRAINING_MIXUP_ALPHA = _env_opt_float("TRAINING_MIXUP_ALPHA", minimum=0.0)
TRAINING_TF_THREADS = env_int("TRAINING_TF_THREADS", 0, minimum=0)  # 0 = min(4, CPUs)
TRAINING_EMBEDDINGS = env_bool("TRAINING_EMBEDDINGS", True)  # pooled embeddings for challenges' novelty score
# Issue 17 (small data): under TRAINING_CV_BELOW_TEST_PHOTOS test photos (unset: HParams' 200) the accuracy is
# estimated by TRAINING_CV_FOLDS-fold cross-validation (unset: 5) over all photos and the model trains on all;
# a first model is published only when its interval's lower bound beats the largest class's share, or
# TRAINING_PUBLISH_MIN_ACCURACY (0..1) when set.
TRAINING_CV_BELOW_TEST_PHOTOS = _env_opt_int("TRAINING_CV_BELOW_TEST_PHOTOS", minimum=0)
TRAINING_CV_FOLDS = _env_opt_int("TRAINING_CV_FOLDS", minimum=2)
TRAINING_PUBLISH_MIN_ACCURACY = _env_opt_float("TRAINING_PUBLISH_MIN_ACCURACY", minimum=0.0, maximum=1.0)
# local: the scheduler host trains (today's one-machine behaviour). remote: the nightly job and the admin's
# button only queue a run; `manage.py trainworker` on a GPU host takes it (docs/deploy.md).
TRAINING_WORKER = env_choice("TRAINING_WORKER", "local", {"local", "remote"})
TRAINING_WORKER_POLL_SECONDS = env_int("TRAINING_WORKER_POLL_SECONDS", 15, minimum=1)
# The scheduler and every trainworker write a heartbeat row this often (admin: "Process heartbeats").
PROCESS_HEARTBEAT_SECONDS = env_int("PROCESS_HEARTBEAT_SECONDS", 30, minimum=1)
SCHEDULER_JOBS.append(
    {"id": "training-nightly",
     "command": ["train", "--trigger", "scheduler", *(["--enqueue"] if TRAINING_WORKER == "remote" else [])],
     "hour": TRAINING_NIGHTLY_AT[0], "minute": TRAINING_NIGHTLY_AT[1]}
)
# --- challenges (issue 4) -------------------------------------------------
# See docs/challenges.md. Day boundaries are in TIME_ZONE.
CHALLENGE_ROTATE_AT = env_time("CHALLENGE_ROTATE_AT", "00:00")
CHALLENGE_NO_REPEAT_DAYS = env_int("CHALLENGE_NO_REPEAT_DAYS", 7, minimum=0)
CHALLENGE_BONUS_POINTS = env_int("CHALLENGE_BONUS_POINTS", 20, minimum=0)
POINTS_PHOTO_APPROVED = env_int("POINTS_PHOTO_APPROVED", 10, minimum=0)
POINTS_FEATURED = env_int("POINTS_FEATURED", 25, minimum=0)
POINTS_PER_VOTE = env_int("POINTS_PER_VOTE", 2, minimum=0)
POINTS_NOVELTY_MAX = env_int("POINTS_NOVELTY_MAX", 15, minimum=0)
NOVELTY_PERCENTILE = env_float("NOVELTY_PERCENTILE", 0.75, minimum=0.0, maximum=0.99)
NOVELTY_MIN_PHOTOS = env_int("NOVELTY_MIN_PHOTOS", 10, minimum=2)
LEADERBOARD_MAX_PAGE_SIZE = env_int("LEADERBOARD_MAX_PAGE_SIZE", 100, minimum=1)
CHALLENGE_COMPACT_EVERY_MINUTES = env_int("CHALLENGE_COMPACT_EVERY_MINUTES", 10, minimum=1)
if CHALLENGE_COMPACT_EVERY_MINUTES > 59:
    raise ImproperlyConfigured(f"CHALLENGE_COMPACT_EVERY_MINUTES must be 1 to 59, got {CHALLENGE_COMPACT_EVERY_MINUTES}")
SCHEDULER_JOBS.append(
    # run_at_start: a new installation (or one whose scheduler was down at
    # rotation time) opens today's challenge when the scheduler starts.
    {"id": "challenges_rotate", "command": ["challenges_rotate"], "run_at_start": True,
     "hour": CHALLENGE_ROTATE_AT[0], "minute": CHALLENGE_ROTATE_AT[1]}
)
SCHEDULER_JOBS.append(
    # Also opens today's challenge when none is open (labels imported after the
    # rotation ran): run_at_start so a restarted scheduler asks at once.
    {"id": "challenges_compact", "command": ["challenges_compact"], "run_at_start": True,
     "hour": "*", "minute": f"*/{CHALLENGE_COMPACT_EVERY_MINUTES}"}
)
# --- newsletter (issue 5) -------------------------------------------------
# Editions are composed for each period and sent by `manage.py newsletter_send`,
# which the scheduler runs every hour: it composes the edition once its slot
# (weekday + hour, in TIME_ZONE) has passed, sends editions that are due, and
# retries temporary failures whose back-off has elapsed.
NEWSLETTER_FREQUENCY = env_choice("NEWSLETTER_FREQUENCY", "weekly", {"weekly", "daily"})
NEWSLETTER_WEEKDAY = env_choice("NEWSLETTER_WEEKDAY", "mon", {"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
NEWSLETTER_HOUR = env_int("NEWSLETTER_HOUR", 9, minimum=0)
if NEWSLETTER_HOUR > 23:
    raise ImproperlyConfigured(f"NEWSLETTER_HOUR must be an hour from 0 to 23, got {NEWSLETTER_HOUR}")
# true: a composed edition waits until staff release it in the admin.
NEWSLETTER_REQUIRE_APPROVAL = env_bool("NEWSLETTER_REQUIRE_APPROVAL", False)
# A period with no approved public photo, no challenge winner and no new model
# gets no edition (a fresh installation, a quiet week).
NEWSLETTER_SKIP_EMPTY = env_bool("NEWSLETTER_SKIP_EMPTY", True)
NEWSLETTER_FROM_EMAIL = env_str("NEWSLETTER_FROM_EMAIL", DEFAULT_FROM_EMAIL)
NEWSLETTER_UNSUBSCRIBE_MAILTO = env_str("NEWSLETTER_UNSUBSCRIBE_MAILTO")  # optional mailto: in List-Unsubscribe
NEWSLETTER_CONFIRM_MAX_AGE_DAYS = env_int("NEWSLETTER_CONFIRM_MAX_AGE_DAYS", 7, minimum=1)
NEWSLETTER_CONFIRM_RESEND_SECONDS = env_int("NEWSLETTER_CONFIRM_RESEND_SECONDS", 600, minimum=0)
NEWSLETTER_BEST_PHOTOS = env_int("NEWSLETTER_BEST_PHOTOS", 6, minimum=1)
NEWSLETTER_NEEDED_LABELS = env_int("NEWSLETTER_NEEDED_LABELS", 3, minimum=1)
NEWSLETTER_BATCH_SIZE = env_int("NEWSLETTER_BATCH_SIZE", 100, minimum=1)
NEWSLETTER_CLAIM_LEASE_SECONDS = env_int("NEWSLETTER_CLAIM_LEASE_SECONDS", 600, minimum=1)
NEWSLETTER_MAX_ATTEMPTS = env_int("NEWSLETTER_MAX_ATTEMPTS", 5, minimum=1)
NEWSLETTER_RETRY_BASE_SECONDS = env_int("NEWSLETTER_RETRY_BASE_SECONDS", 60, minimum=0)
NEWSLETTER_RETRY_MAX_SECONDS = env_int("NEWSLETTER_RETRY_MAX_SECONDS", 3600, minimum=0)
NEWSLETTER_SEND_MAX_WAIT_SECONDS = env_int("NEWSLETTER_SEND_MAX_WAIT_SECONDS", 900, minimum=0)
NEWSLETTER_MAX_FAILURES = env_int("NEWSLETTER_MAX_FAILURES", 3, minimum=1)
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["newsletter_subscribe"] = env_str("NEWSLETTER_SUBSCRIBE_RATE", "20/hour")
# Every hour at :05: composes when a slot has passed, sends released editions, picks up due retries.
SCHEDULER_JOBS.append({"id": "newsletter-send", "command": ["newsletter_send", "--no-progress"], "hour": "*", "minute": 5})

# --- abuse hardening (issue 12; see docs/operations.md and docs/decisions.md) --
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
# every worker and host), per account and per client address, and locks each
# out after LOGIN_FAILURE_LIMIT failures for a cool-off that doubles with every
# further round of LOGIN_FAILURE_LIMIT failures remembered (config.lockout).
# Its backend comes first, so every authenticate() given the request is checked:
# the admin, the web sign-in and the API token endpoint.
AUTHENTICATION_BACKENDS = [
    "config.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
LOGIN_LOCKOUT_MAX_MINUTES = env_int("LOGIN_LOCKOUT_MAX_MINUTES", 24 * 60, minimum=1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
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
# axes keeps a row per failed and per successful sign-in; the scheduler prunes
# both nightly. Failures must outlive the lock-out's memory (the growing cool-off counts them).
LOGIN_LOG_KEEP_DAYS = env_int("LOGIN_LOG_KEEP_DAYS", 30, minimum=1)
if LOGIN_LOG_KEEP_DAYS * 24 * 60 < LOGIN_LOCKOUT_MAX_MINUTES:
    raise ImproperlyConfigured(f"LOGIN_LOG_KEEP_DAYS ({LOGIN_LOG_KEEP_DAYS}) must cover LOGIN_LOCKOUT_MAX_MINUTES "
                               f"({LOGIN_LOCKOUT_MAX_MINUTES}), the failures a lock-out's length counts")
SCHEDULER_JOBS.append({"id": "login-failures-prune", "command": ["axes_reset_failure_logs", "--age", str(LOGIN_LOG_KEEP_DAYS)],
                       "hour": 4, "minute": 10})
SCHEDULER_JOBS.append({"id": "login-successes-prune", "command": ["axes_reset_logs", "--age", str(LOGIN_LOG_KEEP_DAYS)],
                       "hour": 4, "minute": 15})

# Content-Security-Policy on every response (django-csp). Scripts only from our
# own static files (the camera page's included); images may also come from S3
# (presigned thumbnail/model URLs) and from blob: (the camera's preview).
from csp.constants import NONCE, NONE, SELF  # noqa: E402

_img_src = [SELF, "data:", "blob:"]
if S3_BUCKET:
    from urllib.parse import urlsplit as _urlsplit

    _img_src.append(f"{_urlsplit(S3_ENDPOINT_URL).scheme}://{_urlsplit(S3_ENDPOINT_URL).netloc}" if S3_ENDPOINT_URL
                    else f"https://s3.{S3_REGION}.amazonaws.com")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": _img_src,
        "connect-src": [SELF],
        "media-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if env_bool("CSP_REPORT_ONLY", False):  # try a stricter policy on a live site without breaking it
    CONTENT_SECURITY_POLICY_REPORT_ONLY, CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY, None
