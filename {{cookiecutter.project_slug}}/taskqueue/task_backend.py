"""A backend for Django's own task API (django.tasks) that runs tasks on Celery.

A function decorated with `@task` is registered as a Celery task under its import
path, so the workers run it beside the @shared_task functions: same broker,
routing, time limits and late acknowledgement. Its result is the task's row in
django-celery-results' TaskResult table, which the admin and the dashboard show.

Like Celery's delay(), enqueue() sends at once, even inside a transaction: to
send only once the transaction commits, as Django's documentation advises, call
transaction.on_commit(partial(my_task.enqueue, ...)).
"""

import json
import math
from traceback import format_exception
from types import SimpleNamespace

from celery import current_app as celery_app
from celery import states, uuid
from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string
from django_celery_results.backends import DatabaseBackend

from .tasks_api import (
    DEFAULT_TASK_PRIORITY,
    DEFAULT_TASK_QUEUE_NAME,
    BaseTaskBackend,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
    task_finished,
    task_started,
)

# Celery's states as Django's statuses. RETRY: the task will run again.
STATUSES = {
    states.PENDING: TaskResultStatus.READY,
    states.RETRY: TaskResultStatus.READY,
    states.SUCCESS: TaskResultStatus.SUCCESSFUL,
    states.FAILURE: TaskResultStatus.FAILED,
    states.REVOKED: TaskResultStatus.FAILED,
}


def redis_priority(priority):
    """Django's priority (-100 to 100, higher runs sooner) as a Redis priority, or None.

    kombu serves Redis' levels 0, 3, 6 and 9 in that order, and every Celery task
    sent without a priority is at 0: a priority of 0 or more runs with those,
    one below 0 after them.
    """
    if priority >= 0:
        return None
    return 3 * math.ceil(-priority * 3 / 100)


class CeleryBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True

    def __init__(self, alias, params):
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues = {DEFAULT_TASK_QUEUE_NAME, *self.celery_queues()}

    @property
    def supports_priority(self):
        """Only Redis orders waiting tasks by priority (RabbitMQ would need priority queues)."""
        return celery_app.connection_for_write().transport.driver_type == "redis"

    @property
    def supports_get_result(self):
        """Results are read from TaskResult rows, which the django-cache backend lacks."""
        return isinstance(celery_app.backend, DatabaseBackend)

    @staticmethod
    def celery_queues():
        """The queues Celery workers read unless told otherwise (CELERY_TASK_QUEUES)."""
        return {queue.name for queue in celery_app.conf.task_queues or ()} or {
            celery_app.conf.task_default_queue
        }

    def check(self, **kwargs):
        unread = self.queues - {DEFAULT_TASK_QUEUE_NAME} - self.celery_queues()
        return [
            checks.Error(
                f"TASKS[{self.alias!r}] lists the queue {name!r}, which no Celery worker reads.",
                hint="Add it to CELERY_TASK_QUEUES, or remove it from QUEUES.",
                id="tasks.celery.E001",
            )
            for name in sorted(unread)
        ]

    def validate_task(self, task):
        super().validate_task(task)
        # Every Task object is validated when it is made, so each @task function
        # is known to Celery, in web and worker processes, once its module is imported.
        self.celery_task(task)

    def celery_task(self, task):
        """The Celery task that runs `task`, registered under its import path."""
        name = task.module_path
        if name not in celery_app.tasks:

            def run(celery_task, *args, **kwargs):
                return self.run(task, celery_task.request, args, kwargs)

            celery_app.task(run, name=name, bind=True)
        return celery_app.tasks[name]

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        result = TaskResult(
            task=task,
            id=uuid(),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        # The arguments as stored with the result: JSON, which get_result() reads back.
        shown = {"argsrepr": json.dumps(result.args), "kwargsrepr": json.dumps(result.kwargs)}
        options = {"task_id": result.id, "eta": task.run_after, **shown}
        if task.queue_name != DEFAULT_TASK_QUEUE_NAME:
            options["queue"] = task.queue_name
        if task.priority != DEFAULT_TASK_PRIORITY:  # validate_task() let it through: Redis
            options["priority"] = redis_priority(task.priority)
        if self.supports_get_result:
            # A PENDING row: get_result() can tell a queued task from an unknown id.
            request = SimpleNamespace(task=task.module_path, **shown)
            celery_app.backend.store_result(result.id, None, states.PENDING, request=request)
        try:
            self.celery_task(task).apply_async(result.args, result.kwargs, **options)
        except BaseException:
            if self.supports_get_result:
                celery_app.backend.forget(result.id)
            raise
        task_enqueued.send(type(self), task_result=result)
        return result

    def run(self, task, request, args, kwargs):
        """Run `task` in a Celery worker, sending Django's task signals."""
        started = timezone.now()
        result = TaskResult(
            task=task,
            id=request.id,
            status=TaskResultStatus.RUNNING,
            enqueued_at=None,
            started_at=started,
            finished_at=None,
            last_attempted_at=started,
            args=list(args),
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[request.hostname] * (request.retries + 1),
        )
        task_started.send(type(self), task_result=result)
        try:
            if task.takes_context:
                value = task.call(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = task.call(*args, **kwargs)
        except Exception as exc:
            path = f"{type(exc).__module__}.{type(exc).__qualname__}"
            traceback = "".join(format_exception(exc))
            result.errors.append(TaskError(exception_class_path=path, traceback=traceback))
            finish(result, TaskResultStatus.FAILED)
            task_finished.send(type(self), task_result=result)
            raise
        finish(result, TaskResultStatus.SUCCESSFUL, value)
        task_finished.send(type(self), task_result=result)
        return value

    def get_result(self, result_id):
        if not self.supports_get_result:
            return super().get_result(result_id)
        backend = celery_app.backend
        row = backend.TaskModel._default_manager.filter(task_id=result_id).first()
        task = row and find_task(row.task_name, self.task_class)
        if task is None:
            raise TaskResultDoesNotExist(f"No django.tasks result has the id {result_id!r}.")
        status = STATUSES.get(row.status, TaskResultStatus.RUNNING)
        result = TaskResult(
            task=task,
            id=row.task_id,
            status=status,
            enqueued_at=row.date_created,
            started_at=row.date_started,
            finished_at=None,
            last_attempted_at=row.date_started,
            args=json.loads(backend.decode_content(row, row.task_args) or "[]"),
            kwargs=json.loads(backend.decode_content(row, row.task_kwargs) or "{}"),
            backend=self.alias,
            errors=[],
            worker_ids=[row.worker] if row.worker else [],
        )
        value = backend.decode_content(row, row.result)
        if status == TaskResultStatus.FAILED and row.status == states.FAILURE:
            path = f"{value['exc_module']}.{value['exc_type']}"
            result.errors.append(TaskError(exception_class_path=path, traceback=row.traceback))
        if result.is_finished:
            finish(result, status, value, at=row.date_done)
        return result


def find_task(name, task_class):
    """The django.tasks Task at import path `name`, or None (e.g. for a @shared_task)."""
    try:
        task = import_string(name or "")
    except ImportError:
        return None
    return task if isinstance(task, task_class) else None


def finish(result, status, value=None, at=None):
    """Set a finished TaskResult's fields (the dataclass is frozen)."""
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", at or timezone.now())
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", value)
