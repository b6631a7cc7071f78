"""
Django settings for {{ cookiecutter.project_name }}.

Everything that differs between machines is read from the environment; in
development the `.env` file beside manage.py supplies it (see .env.example).

https://docs.djangoproject.com/en/5.2/topics/settings/
https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from datetime import timedelta
from pathlib import Path

import django
import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Variables already in the environment win over the file.
environ.Env.read_env(BASE_DIR / ".env")

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = env.str("SECRET_KEY")

# SECURITY WARNING: don't run with debug turned on in production!
DEBUG = env.bool("DEBUG", default=False)

# A guessable key lets anyone forge sessions and password reset links, and
# `check --deploy` warns of it only when someone runs it: refuse to start.
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("SECRET_KEY must be 50 or more random characters when DEBUG is off")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])


# Application definition

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
{%- if cookiecutter.use_celery_beat == "y" %}
    "django_celery_beat",
{%- endif %}
    "taskqueue",
{%- if cookiecutter.include_demoapp == "y" %}
    "demoapp",
{%- endif %}
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")  # the backport of Django 6's django.tasks

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
{%- if cookiecutter.use_json_logs == "y" %}
    # First, so that every log line of a request names it.
    "taskqueue.logs.RequestIdMiddleware",
{%- endif %}
    # Serves STATIC_ROOT, right after the security headers are set.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "{{ cookiecutter.project_slug }}.urls"

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

WSGI_APPLICATION = "{{ cookiecutter.project_slug }}.wsgi.application"
{%- if cookiecutter.include_demoapp == "y" %}

# Pages that need a login send visitors to the admin's login form.
LOGIN_URL = "admin:login"
{%- endif %}


# Database: DATABASE_URL, e.g. sqlite:///db.sqlite3, postgres://user:pass@host/db,
# mysql://user:pass@host/db
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases

database = env.db("DATABASE_URL")
# A URL that names no database would pass every check: a worker would start,
# then fail every task.
if database.get("ENGINE") not in environ.Env.DB_SCHEMES.values():
    raise ImproperlyConfigured("DATABASE_URL must be a database URL such as sqlite:///db.sqlite3")
if database["ENGINE"] == "django.db.backends.sqlite3":
    database |= {
        # A relative file name is relative to this project, not to the current directory.
        "NAME": BASE_DIR / database["NAME"],
        # Workers write concurrently: take the write lock when a transaction starts
        # and wait for it, instead of failing with "database is locked". A commit is
        # on the disk when it returns (synchronous=FULL; NORMAL may lose the last ones
        # in a power cut, after the task's message was acknowledged).
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        },
        # The tests' worker thread waits for the write lock in a file; Django's
        # in-memory test database would fail it with "table is locked".
        "TEST": {"NAME": BASE_DIR / "test.sqlite3"},
    }
elif database["ENGINE"] == "django.db.backends.mysql":
    # Full Unicode (emoji included); MySQL's "utf8" stores 3 bytes at most.
    database["OPTIONS"] = {"charset": "utf8mb4", **database.get("OPTIONS", {})}

DATABASES = {
    "default": database
    | {
        # Reuse connections for a minute, checked before reuse, so a restarted
        # database server costs no failed request or task.
        "CONN_MAX_AGE": env.int("CONN_MAX_AGE", default=60),
        "CONN_HEALTH_CHECKS": True,
    }
}


# Password validation
# https://docs.djangoproject.com/en/5.2/ref/settings/#auth-password-validators

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
    },
    {
        "NAME": "django.contrib.auth.password_validation.CommonPasswordValidator",
    },
    {
        "NAME": "django.contrib.auth.password_validation.NumericPasswordValidator",
    },
]


# Internationalization
# https://docs.djangoproject.com/en/5.2/topics/i18n/

LANGUAGE_CODE = "en-us"

TIME_ZONE = "{{ cookiecutter.timezone }}"

USE_I18N = True

USE_TZ = True


# Static files (CSS, JavaScript, Images), served by WhiteNoise
# https://docs.djangoproject.com/en/5.2/howto/static-files/
# https://whitenoise.readthedocs.io/

STATIC_URL = "static/"
# Where `manage.py collectstatic` gathers every app's static files.
STATIC_ROOT = BASE_DIR / "staticfiles"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # With DEBUG off, pages link to compressed copies whose names hold a hash of
    # their content, which browsers may cache for good; with DEBUG on, to each
    # app's own files, so nothing needs collecting.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Set from .env's DEBUG: the tests turn DEBUG off, but collect nothing either.
WHITENOISE_AUTOREFRESH = DEBUG
{%- if cookiecutter.use_json_logs == "y" %}


# Logging: one JSON object a line on stderr, from every process, naming the
# request or task that wrote it (taskqueue/logs.py).
# https://docs.djangoproject.com/en/5.2/topics/logging/

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "taskqueue.logs.ContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "{asctime}{levelname}{name}{message}",
            "style": "{",
        },
    },
    "handlers": {
        "json": {"class": "logging.StreamHandler", "filters": ["context"], "formatter": "json"},
    },
    "root": {"handlers": ["json"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own loggers go through the root's handler instead of their plain-text ones.
    "loggers": {
        "django": {"handlers": []},
        "django.server": {"handlers": [], "propagate": True},
    },
}
{%- endif %}
{%- if cookiecutter.use_sentry == "y" %}


# Errors: each unhandled exception of a request or a task is reported to Sentry
# when SENTRY_DSN is set, and nothing is sent when it is not. The SDK reads
# SENTRY_ENVIRONMENT and SENTRY_RELEASE itself.
# https://docs.sentry.io/platforms/python/integrations/django/

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
{%- if cookiecutter.use_celery_beat == "y" %}
        integrations=[
            DjangoIntegration(),
            # Each periodic task run every minute or less often checks in with Sentry
            # Crons, which reports one that misses its schedule or fails.
            CeleryIntegration(monitor_beat_tasks=True),
        ],
{%- else %}
        integrations=[DjangoIntegration(), CeleryIntegration()],
{%- endif %}
        # No user data (IP addresses, cookies, user names) leaves the site.
        send_default_pii=False,
        # The share of requests and tasks also sent as performance traces; unset, the
        # SDK does no tracing at all.
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=None),
    )
{%- endif %}
{%- if cookiecutter.use_prometheus == "y" %}


# Metrics for Prometheus: /metrics/ answers the bearer of this token (none: it
# answers no one); each worker serves its own with --metrics-port (taskqueue/metrics.py).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
{%- endif %}
{%- if cookiecutter.use_opentelemetry == "y" %}


# Traces: OpenTelemetry spans of requests and tasks go over OTLP/HTTP to this
# collector when set, e.g. http://127.0.0.1:4318 (taskqueue/tracing.py).
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
{%- endif %}

# Default primary key field type
# https://docs.djangoproject.com/en/5.2/ref/settings/#default-auto-field

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# Security: HTTPS only, unless DEBUG is on or SECURE_SSL_REDIRECT=false (a site
# with no TLS in front, such as compose.yaml on 127.0.0.1).
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
{%- if cookiecutter.use_prometheus == "y" %}
# Load balancers probe the health check, and Prometheus may scrape the metrics, over
# plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics/$"]
{%- else %}
# Load balancers probe the health check over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
{%- endif %}
SESSION_COOKIE_SECURE = SECURE_SSL_REDIRECT
CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
# Browsers remember to use HTTPS for this long; start low, raise once sure.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600 if SECURE_SSL_REDIRECT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# Behind a proxy that ends TLS, trust the header it sets, as a header and value:
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
SECURE_PROXY_SSL_HEADER = tuple(env.list("SECURE_PROXY_SSL_HEADER", default=[])) or None


# Celery: every CELERY_ setting is the Celery setting of the same name.
# https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
# https://docs.celeryq.dev/en/stable/userguide/configuration.html

# filesystem:// (the embedded broker, no server: taskqueue/broker.py),
# redis://host:6379/0 or amqp://user:pass@host:5672//; for a RabbitMQ cluster, each
# node's URL, separated by ";": a client moves to the next when one fails.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
# A worker started before its broker waits for it instead of exiting.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# SoftTimeLimitExceeded is raised in a task after 4 minutes; its process is
# killed after 5.
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
# Each transport reads its own options and ignores the others'; the environment's
# CELERY_BROKER_TRANSPORT_OPTIONS (JSON) adds to them.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis hands a task whose worker died to another worker after this long: it
    # must outlast the longest task, or long tasks run twice.
    "visibility_timeout": 2 * CELERY_TASK_TIME_LIMIT,
    # ... and looks for such tasks every 10 s, not every 100 s.
    "unacked_restore_throttle": 1,
    # RabbitMQ confirms each publish, so none is silently dropped.
    "confirm_publish": True,
} | env.json("CELERY_BROKER_TRANSPORT_OPTIONS", default={})
# Keep retrying a publish for about half a minute while the broker restarts,
# instead of failing the request after Celery's default 0.6 s.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 10,
    "interval_start": 0,
    "interval_step": 1,
    "interval_max": 5,
}

# Two queues, both read by a plain `celery worker`. To keep slow tasks from
# delaying quick ones, run `worker --queues celery` and `worker --queues long` apart.
CELERY_TASK_QUEUES = [Queue("celery"), Queue("long")]
{%- if cookiecutter.include_demoapp == "y" %}
CELERY_TASK_ROUTES = {"demoapp.tasks.long_task": {"queue": "long"}}
{%- else %}
# Send a task there with {"app.tasks.name": {"queue": "long"}}.
CELERY_TASK_ROUTES = {}
{%- endif %}
if CELERY_BROKER_URL.startswith(("amqp:", "amqps:", "pyamqp:")):
    # On RabbitMQ, quorum queues: each is kept on every node of a cluster, so that
    # losing a node loses no task. Celery then keeps countdown and ETA tasks in
    # RabbitMQ until they are due (native delayed delivery), which needs a topic
    # exchange, where each queue is bound by its own name.
    CELERY_TASK_QUEUES = [
        Queue(queue.name, routing_key=queue.name, queue_arguments={"x-queue-type": "quorum"})
        for queue in CELERY_TASK_QUEUES
    ]
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = "topic"
    # When a machine is lost or a cable cut, missed heartbeats tell a worker that its
    # node went silent, so it moves to another, and tell RabbitMQ that a worker did, so
    # it hands that worker's tasks to others: within about three heartbeats (Celery's
    # default of 120 s would make that 6 minutes).
    CELERY_BROKER_HEARTBEAT = env.int("CELERY_BROKER_HEARTBEAT", default=30)
    # A process connecting for the first time tries the next node when one does not
    # answer, for up to 20 s in all: kombu's default is the connect timeout, 4 s,
    # which the first node alone can use up.
    CELERY_BROKER_TRANSPORT_OPTIONS.setdefault("connect_retries_timeout", 20)
    # With a node down, Celery's own would hold each reconnecting worker up for
    # about 40 s (taskqueue/rabbitmq.py).
    CELERY_WORKER_CONSUMER = "taskqueue.rabbitmq:Consumer"

# Acknowledge a task after it ran, and requeue it if its process dies, so a
# killed worker loses no task. Tasks must therefore be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Reserve one task per process: with late acks, prefetched tasks would wait
# behind a long one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# When the broker connection drops, running late-ack tasks finish, and the broker
# may deliver them again. Cancelling them instead can store RETRY over the SUCCESS
# of a task that has just ended (Celery 5.7.0), and its result is then never ready.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Replace each pool process after this many tasks, which bounds slow leaks, and
# replace it as soon as it exits (Celery's own pool can take up to 5 s).
CELERY_WORKER_MAX_TASKS_PER_CHILD = 1000
CELERY_WORKER_POOL = "taskqueue.prefork:TaskPool"
# Keep the workers' database connections across tasks, as across requests
# (CONN_MAX_AGE), instead of opening new ones for every task.
CELERY_DB_REUSE_MAX = 1000
{%- if cookiecutter.result_backend == "django-db" %}

# Results are rows of django-celery-results' TaskResult: they survive restarts
# and show in the admin; taskqueue/results.py writes each in one statement.
CELERY_RESULT_BACKEND = "taskqueue.results:DatabaseBackend"
# A result that cannot be stored or read because the database went away is
# tried again on a new connection, for about a minute.
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 20
{%- else %}

# Results go through Django's cache (the database table in CACHES).
CELERY_RESULT_BACKEND = "django-cache"
CELERY_CACHE_BACKEND = "default"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "django_cache",
        # Django's default of 300 entries would delete results before they are
        # read; they expire after CELERY_RESULT_EXPIRES instead.
        "OPTIONS": {"MAX_ENTRIES": 1_000_000},
    }
}
{%- endif %}
# Store each task's name, arguments and worker with its result.
CELERY_RESULT_EXTENDED = True
# Results older than this are deleted daily by beat's celery.backend_cleanup.
CELERY_RESULT_EXPIRES = timedelta(days=7)
# Report STARTED, so a running task can be told from a queued one.
CELERY_TASK_TRACK_STARTED = True
# django-celery-results indexes its task_id column: 191 characters keeps that
# index within MySQL's limit in utf8mb4. Set before the first migrate.
DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = 191

# Crontab schedules and ETAs are in the site's time zone.
CELERY_TIMEZONE = TIME_ZONE
{%- if cookiecutter.use_celery_beat == "y" %}

# Periodic tasks are rows edited in the admin, read by `celery beat`, which
# records each tick for `manage.py checkbeat` (taskqueue/beat.py).
CELERY_BEAT_SCHEDULER = "taskqueue.beat:Scheduler"
# Save each periodic task's last run as it is sent, not every 3 minutes.
CELERY_BEAT_SYNC_EVERY = 1
{%- endif %}

# Django's own task API: functions decorated with @task run on the Celery
# workers too (taskqueue/task_backend.py).
# https://docs.djangoproject.com/en/6.0/topics/tasks/
TASKS = {"default": {"BACKEND": "taskqueue.task_backend.CeleryBackend"}}
