"""Celery's result backend: django-celery-results' TaskResult rows, written faster.

django-celery-results stores each state change of a task (STARTED, then SUCCESS
or FAILURE) with get_or_create() and save(): a SELECT, then an INSERT or an
UPDATE. This backend writes the same row with one INSERT ... ON CONFLICT DO
UPDATE (ON DUPLICATE KEY UPDATE on MySQL and MariaDB), so the admin, the
dashboard and AsyncResult read exactly what the library would have stored.

It also retries a write or read that failed because the database went away, on
a new connection; deletes expired results in small batches, so that beat's
daily cleanup never holds the database's write lock for long (on SQLite, with a
pause after each batch, so that a waiting worker gets the lock); has
AsyncResult.get() look again soon after a task was sent, then less and less often;
and, on SQLite, does not wait for the disk to store STARTED (see unsynced()).
"""

import contextlib
import time

from celery import states
from celery.exceptions import TimeoutError
from celery.utils.time import maybe_timedelta
from django.db import InterfaceError, OperationalError, connections, router
from django.db.models.constants import OnConflict
from django.db.models.functions import Now
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend as LibraryBackend

# Rows deleted per statement by cleanup(); each batch is its own short transaction.
CLEANUP_BATCH = 1000
# Seconds AsyncResult.get() waits before it first looks again; it then doubles
# the wait each time, up to its `interval` (0.5 s by default).
FIRST_LOOK = 0.005


@contextlib.contextmanager
def unsynced(connection):
    """SQLite commits that do not wait for the disk (synchronous=NORMAL), for a state
    whose loss in a power cut costs nothing: the task's message is still in the broker
    (acknowledged only after the final state is stored), so it runs again. In WAL mode the
    next synced commit of any connection makes these durable too."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        yield  # the level cannot change inside a transaction
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        level = cursor.fetchone()[0]
        if level <= 1:  # NORMAL or OFF already
            yield
            return
        cursor.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            cursor.execute(f"PRAGMA synchronous={level}")


class DatabaseBackend(LibraryBackend):
    def _store_result(self, task_id, result, status, traceback=None, request=None, using=None):
        content_type, content_encoding, result = self.encode_content(result)
        children = self.current_task_children(request)
        meta = {**self._get_meta_from_request(request), "children": children}
        fields = {
            "status": status,
            "result": result,
            "traceback": traceback,
            "meta": self.encode_content(meta)[2],
            "content_encoding": content_encoding,
            "content_type": content_type,
            **self._get_extended_properties(request, traceback),
        }
        if status == states.STARTED:
            fields["date_started"] = Now()
        using = using or router.db_for_write(self.TaskModel)
        ready = status in states.READY_STATES
        with contextlib.nullcontext() if ready else unsynced(connections[using]):
            self._upsert(self.TaskModel, using, {"task_id": task_id}, fields)
        return result

    def _save_group(self, group_id, group_result):
        content_type, content_encoding, result = self.encode_content(group_result.as_tuple())
        fields = {
            "result": result,
            "content_type": content_type,
            "content_encoding": content_encoding,
        }
        self._upsert(self.GroupModel, None, {"group_id": group_id}, fields)
        return group_result

    def _upsert(self, model, using, key, fields):
        """Insert the row `key` names, or update `fields` (and date_done) if it exists.

        One statement, outside a transaction: bulk_create(update_conflicts=True) would
        build it inside one, and hold SQLite's write lock all the while.
        """
        using = using or router.db_for_write(model)
        with_target = connections[using].features.supports_update_conflicts_with_target
        get_field = model._meta.get_field
        model._default_manager.db_manager(using)._insert(
            [model(**key, **fields)],
            fields=[field for field in model._meta.concrete_fields if not field.primary_key],
            on_conflict=OnConflict.UPDATE,
            update_fields=[get_field(name) for name in (*fields, "date_done")],
            unique_fields=[get_field(name) for name in key] if with_target else None,
        )

    def exception_safe_to_retry(self, exc):
        """A lost connection: Celery retries (CELERY_RESULT_BACKEND_ALWAYS_RETRY) on a new one.

        Every write here stores a whole row, so running it again is harmless.
        """
        if not isinstance(exc, InterfaceError | OperationalError):
            return False
        connection = connections[router.db_for_write(self.TaskModel)]
        if connection.in_atomic_block:
            return False  # the caller's transaction is lost: it must fail as a whole
        connection.close()
        return True

    def wait_for(self, task_id, timeout=None, interval=0.5, no_ack=True, on_interval=None):
        """Wait for a task's result as Celery does, looking again after FIRST_LOOK, then
        twice as long each time up to `interval`: a quick task's result is read
        milliseconds after it is stored, and a long wait costs no more queries."""
        self._ensure_not_eager()
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = FIRST_LOOK
        while True:
            meta = self.get_task_meta(task_id)
            if meta["status"] in states.READY_STATES:
                return meta
            if on_interval:
                on_interval()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("The operation timed out.")
            time.sleep(wait if left is None else min(wait, left))
            wait = min(wait * 2, interval)

    def as_uri(self, include_password=False):
        """How the worker's banner names this backend ("results:")."""
        using = router.db_for_write(self.TaskModel)
        return f"django-db (TaskResult rows, {connections[using].vendor} database {using!r})"

    def cleanup(self):
        """Delete results that expired (CELERY_RESULT_EXPIRES), CLEANUP_BATCH rows at a time."""
        if not self.expires:
            return
        before = timezone.now() - maybe_timedelta(self.expires)
        for model in (self.TaskModel, self.GroupModel):
            manager = model._default_manager
            # SQLite's write lock has no queue: a worker storing a result sleeps and
            # retries, and would find it taken by the next batch again and again. Leave
            # it free between batches for as long as a batch held it.
            sqlite = connections[router.db_for_write(model)].vendor == "sqlite"
            expired = manager.filter(date_done__lt=before).values_list("pk", flat=True)
            while batch := list(expired[:CLEANUP_BATCH]):
                started = time.monotonic()
                manager.filter(pk__in=batch).delete()
                if sqlite:
                    time.sleep(time.monotonic() - started)
