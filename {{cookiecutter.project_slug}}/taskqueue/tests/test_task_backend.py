import asyncio
from datetime import timedelta
from functools import partial
from types import SimpleNamespace

import pytest
from celery import current_app as celery_app
from celery import states
from celery.result import AsyncResult
from django.core import checks
from django.db import transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskqueue.task_backend import CeleryBackend, redis_priority
from taskqueue.tasks_api import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    default_task_backend,
    task,
)

# The worker runs in a thread with its own database connection: rows must be
# committed for it to see them.
pytestmark = pytest.mark.django_db(transaction=True)


@task
def double(number):
    return number * 2


@task
def fail(message):
    raise ValueError(message)


@task(takes_context=True)
def attempt(context):
    return {"id": context.task_result.id, "attempt": context.attempt}


@task
async def sleep_then_double(number):
    await asyncio.sleep(0.01)
    return number * 2


def finished(result, timeout=10):
    """`result`, refreshed until its task has finished."""
    AsyncResult(result.id).get(timeout=timeout, propagate=False)
    result.refresh()
    return result


def test_a_queued_task_has_a_result_to_read():
    later = timezone.now() + timedelta(hours=1)
    result = double.using(run_after=later).enqueue(21)
    assert result.status == TaskResultStatus.READY
    assert double.get_result(result.id).status == TaskResultStatus.READY  # not unknown


def test_enqueued_task_runs_on_the_worker(celery_session_worker):
    result = double.enqueue(21)
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.worker_ids and result.started_at <= result.finished_at
    stored = double.get_result(result.id)
    assert (stored.args, stored.return_value) == ([21], 42)


def test_failing_task_reports_its_error(celery_session_worker):
    result = finished(fail.enqueue("broken on purpose"))
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ValueError
    assert "broken on purpose" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_context_and_async_tasks(celery_session_worker):
    result = finished(attempt.enqueue())
    assert result.return_value == {"id": result.id, "attempt": 1}
    assert finished(sleep_then_double.enqueue(4)).return_value == 8


def test_run_after_is_an_eta(celery_session_worker):
    run_after = timezone.now() + timedelta(seconds=0.5)
    result = finished(double.using(run_after=run_after).enqueue(1))
    assert result.return_value == 2
    assert result.started_at >= run_after


def test_unknown_ids_and_celery_tasks_are_not_results():
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")
    # A result of a Celery task (here, one stored by hand) is no django.tasks result.
    request = SimpleNamespace(task="celery.backend_cleanup")
    celery_app.backend.store_result("celery-task", None, states.SUCCESS, request=request)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("celery-task")


def test_enqueue_waits_for_the_transaction_when_asked(celery_session_worker):
    with transaction.atomic():
        transaction.on_commit(partial(double.enqueue, 5))
        transaction.set_rollback(True)
    with transaction.atomic():
        transaction.on_commit(partial(double.enqueue, 6))
    [row] = TaskResult.objects.filter(task_name=double.module_path)
    assert finished(double.get_result(row.task_id)).return_value == 12
    assert TaskResult.objects.filter(task_name=double.module_path).count() == 1


def test_queues_are_the_ones_celery_workers_read():
    assert default_task_backend.queues == {"default", "celery", "long"}
    with pytest.raises(InvalidTask, match="nowhere"):
        double.using(queue_name="nowhere")
    long_double = double.using(queue_name="long")
    assert long_double.queue_name == "long"

    backend = CeleryBackend("other", {"QUEUES": ["default", "nowhere"]})
    [error] = backend.check()
    assert error.level == checks.ERROR and "'nowhere'" in error.msg


def test_priority_only_where_the_broker_orders_by_it():
    assert not default_task_backend.supports_priority  # the tests' in-memory broker
    with pytest.raises(InvalidTask, match="priority"):
        double.using(priority=10)


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(100, None), (0, None), (-1, 3), (-33, 3), (-34, 6), (-66, 6), (-67, 9), (-100, 9)],
)
def test_redis_priority_keeps_the_order(priority, expected):
    assert redis_priority(priority) == expected
