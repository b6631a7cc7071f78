"""What the project's Celery app adds for Django: Django set up by every celery
command, database connections kept across tasks, and a task class that runs a
task again when it lost its database connection."""

import django
from celery.contrib.django.task import DjangoTask
from django.apps import apps
from django.db import InterfaceError, OperationalError, close_old_connections, connections


def set_up_django(**kwargs):
    """Set Django up as soon as Celery has read its settings (on_after_configure).

    The worker and beat do it themselves, but `celery call` and `celery result`
    first build the result backend, which imports django-celery-results' models
    and would fail with AppRegistryNotReady (django-celery-results issue #20).
    """
    if not (apps.ready or apps.loading):
        django.setup()


def close_old_database_connections(task=None, **kwargs):
    """Before and after each task, drop database connections that are broken or
    older than CONN_MAX_AGE, as Django does around each request. A task run
    eagerly, in the caller's process, shares the caller's connection and
    transaction: those are left alone."""
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
