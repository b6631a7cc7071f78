"""What every task gets from taskqueue/celery.py and the project's Celery settings."""

import os
import time

import billiard
import pytest
from billiard.connection import wait
from celery import current_app as celery_app
from celery import shared_task
from celery.fixups.django import DjangoWorkerFixup
from celery.utils.imports import symbol_by_name
from celery.worker import state
from django.db import OperationalError, connection

from taskqueue.celery import AsynPool

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


def close_sentinel_then_exit(pipes):
    """In a pool process: close the pipe whose closing tells the pool it exited, as the
    kernel does on exit, then take a moment to exit."""
    os.close(pipes[-1][1])
    time.sleep(0.005)


def test_the_pool_replaces_a_process_as_soon_as_it_exits(monkeypatch):
    # The pool hears of an exit when the process's sentinel pipe closes, just before
    # the process can be reaped, and then looks for exited processes to replace.
    pipes = []
    monkeypatch.setattr(os, "pipe", lambda pipe=os.pipe: pipes.append(pipe()) or pipes[-1])
    pool = AsynPool.__new__(AsynPool)  # only its exit handler, on real processes
    pool.REAP_WITHIN = 10
    pool._untrack_child_process = lambda proc, hub: None
    pool.maintain_pool = lambda: exit_codes.append(process.exitcode)
    exit_codes = []
    process = billiard.Process(target=close_sentinel_then_exit, args=(pipes,))
    process.start()
    wait([process.sentinel])
    pool._event_process_exit(None, process)
    assert exit_codes == [0]
    assert symbol_by_name(celery_app.conf.worker_pool).Pool is AsynPool
