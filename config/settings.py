"""Crowdlens settings: read only from environment variables (see README.md).

Defaults run on a laptop with nothing else installed: SQLite and local files
under ./var/, console email. Production sets DATABASE_URL (PostgreSQL),
S3_BUCKET, SECRET_KEY and DEBUG=false.
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

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1),
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"uploads": PHOTO_UPLOAD_RATE, "anon_signup": env_str("SIGNUP_RATE", "30/hour")},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/signin/"
LOGIN_REDIRECT_URL = "/me/"

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", SITE_URL.startswith("https://"))
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

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


TRAINING_VARIANT_NAMES = ("float32", "float16", "dynamic", "int8")
TRAINING_ALPHA = env_float("TRAINING_ALPHA", 0.35, minimum=0.1, maximum=1.4)
TRAINING_INPUT_SIZE = env_int("TRAINING_INPUT_SIZE", 224, minimum=32)
TRAINING_BASE_WEIGHTS = env_str("TRAINING_BASE_WEIGHTS", "imagenet").strip() or "imagenet"
TRAINING_NIGHTLY_AT = env_time("TRAINING_NIGHTLY_AT", "02:00")
TRAINING_MIN_PHOTOS_PER_LABEL = env_int("TRAINING_MIN_PHOTOS_PER_LABEL", 5, minimum=1)
TRAINING_VAL_FRACTION = env_float("TRAINING_VAL_FRACTION", 0.15, minimum=0.0, maximum=0.5)
TRAINING_TEST_FRACTION = env_float("TRAINING_TEST_FRACTION", 0.15, minimum=0.01, maximum=0.5)
TRAINING_GATE_MARGIN = env_float("TRAINING_GATE_MARGIN", 1.0, minimum=0.0, maximum=100.0)  # accuracy points
TRAINING_GATE_VARIANT = env_choice("TRAINING_GATE_VARIANT", "float32", set(TRAINING_VARIANT_NAMES))
TRAINING_INT8_MAX_DROP = env_float("TRAINING_INT8_MAX_DROP", 1.0, minimum=0.0, maximum=100.0)  # accuracy points
TRAINING_VARIANTS = tuple(env_list("TRAINING_VARIANTS", list(TRAINING_VARIANT_NAMES)))
if not TRAINING_VARIANTS or set(TRAINING_VARIANTS) - set(TRAINING_VARIANT_NAMES) or TRAINING_GATE_VARIANT not in TRAINING_VARIANTS:
    raise ImproperlyConfigured(
        f"TRAINING_VARIANTS must be a comma-separated subset of {list(TRAINING_VARIANT_NAMES)} "
        f"that includes TRAINING_GATE_VARIANT ({TRAINING_GATE_VARIANT}), got {TRAINING_VARIANTS!r}"
    )
TRAINING_DEFAULT_VARIANT = env_choice("TRAINING_DEFAULT_VARIANT", "int8" if "int8" in TRAINING_VARIANTS else TRAINING_GATE_VARIANT,
                                      set(TRAINING_VARIANTS))
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
    {"id": "challenges_compact", "command": ["challenges_compact"],
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
