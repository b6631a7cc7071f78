"""What every task gets from taskqueue/celery.py and the project's Celery settings."""

import pytest
from celery import current_app as celery_app
from celery import shared_task
from celery.fixups.django import DjangoWorkerFixup
from celery.worker import state
from django.db import OperationalError, connection

pytestmark = pytest.mark.django_db(transaction=True)


@shared_task(bind=True)
def acknowledged_while_running(self):
    """Whether the worker acknowledged this task's message before running it."""
    [request] = [each for each in state.active_requests if each.id == self.request.id]
    return request.acknowledged


@shared_task(bind=True)
def fails_once(self):
    """Fails with a database error on its first run; returns how many times it ran."""
    if not self.request.retries:
        raise OperationalError("server closed the connection unexpectedly")
    return self.request.retries + 1


def test_a_task_is_acknowledged_only_once_it_has_run(celery_session_worker):
    # So that a worker killed while running it leaves it on the broker, to run again.
    assert acknowledged_while_running.delay().get(timeout=10) is False
    assert acknowledged_while_running.reject_on_worker_lost


def test_a_task_that_lost_its_database_connection_runs_again(monkeypatch):
    connection.ensure_connection()
    monkeypatch.setattr(connection, "is_usable", lambda: False)  # as after a restart
    result = fails_once.apply()
    assert result.get() == 2
    assert connection.connection is None  # the lost connection was closed, not reused


def test_other_database_errors_fail_the_task():
    # Such as SQLite's "database is locked": the connection still works.
    connection.ensure_connection()
    result = fails_once.apply()
    assert result.failed()
    assert isinstance(result.result, OperationalError)


def test_workers_keep_database_connections_across_tasks():
    # Else Celery's Django fixup closes every connection around each task.
    assert DjangoWorkerFixup(celery_app).db_reuse_max
