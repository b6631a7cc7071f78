import os

import django
from celery import Celery
from celery.contrib.django.task import DjangoTask
from celery.signals import task_postrun, task_prerun
from django.apps import apps
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from . import broker  # noqa: F401 (makes filesystem:// the project's embedded broker)

# Set the default Django settings module for the 'celery' program.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")

# Every task is a RetryOnLostDatabaseTask, defined below.
app = Celery(
    "{{ cookiecutter.project_slug }}",
    task_cls="{{ cookiecutter.project_slug }}.celery:RetryOnLostDatabaseTask",
)

# Read every CELERY_-prefixed setting from Django's settings.
app.config_from_object("django.conf:settings", namespace="CELERY")

# Load tasks.py from every installed Django app.
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=True)
def debug_task(self):
    print(f"Request: {self.request!r}")


@app.on_after_configure.connect
def setup_django(**kwargs):
    """Set Django up as soon as Celery has read its settings.

    The worker and beat do it themselves, but `celery call` and `celery result`
    first build the django-db result backend, which imports django-celery-results'
    models and fails with AppRegistryNotReady (django-celery-results issue #20).
    """
    if not (apps.ready or apps.loading):
        django.setup()


# Database connections in the workers: kept across tasks as across requests,
# and a task that lost its connection runs again on a new one.


@app.on_after_configure.connect
def keep_database_connections(sender, **kwargs):
    """Celery's Django fixup closes every database connection around each task, and
    each task pays for a new one, unless CELERY_DB_REUSE_MAX is set: then it closes
    them every 1000 tasks, and the handler below drops broken or expired ones."""
    sender.conf.setdefault("CELERY_DB_REUSE_MAX", 1000)


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task=None, **kwargs):
    """Drop database connections that are broken or older than CONN_MAX_AGE, as
    Django does around each request. A task run eagerly, in the caller's process,
    shares the caller's connection and transaction: those are left alone."""
    if task is None or not task.request.is_eager:
        close_old_connections()


class RetryOnLostDatabaseTask(DjangoTask):
    """Celery's Django task class (with delay_on_commit), where a task that failed
    because its database connection was lost (a restart, a dropped connection) runs
    again on a new one, after 1, 2, 4 ... 60 s, up to 10 times. Other database
    errors, such as SQLite's "database is locked", fail it as usual."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except (InterfaceError, OperationalError) as exc:
            if not close_lost_connections():
                raise
            delay = min(2**self.request.retries, 60)
            raise self.retry(exc=exc, countdown=delay, max_retries=10) from exc


def close_lost_connections():
    """Close each database connection that no longer works; whether there was one."""
    lost = [
        connection
        for connection in connections.all(initialized_only=True)
        if connection.connection is not None and not connection.is_usable()
    ]
    for connection in lost:
        connection.close()
    return bool(lost)
