"""Celery's result backend: django-celery-results' TaskResult rows, written faster.

django-celery-results stores each state change of a task (STARTED, then SUCCESS
or FAILURE) with get_or_create() and save(): a SELECT, then an INSERT or an
UPDATE. This backend writes the same row with one INSERT ... ON CONFLICT DO
UPDATE (ON DUPLICATE KEY UPDATE on MySQL and MariaDB), so the admin, the
dashboard and AsyncResult read exactly what the library would have stored.

It also retries a write or read that failed because the database went away, on
a new connection, and deletes expired results in small batches, so that beat's
daily cleanup never holds the database's write lock for long.
"""

from celery import states
from celery.utils.time import maybe_timedelta
from django.db import InterfaceError, OperationalError, connections, router
from django.db.models.constants import OnConflict
from django.db.models.functions import Now
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend as LibraryBackend

# Rows deleted per statement by cleanup(); each batch is its own short transaction.
CLEANUP_BATCH = 1000


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

    def cleanup(self):
        """Delete results that expired (CELERY_RESULT_EXPIRES), CLEANUP_BATCH rows at a time."""
        if not self.expires:
            return
        before = timezone.now() - maybe_timedelta(self.expires)
        for model in (self.TaskModel, self.GroupModel):
            manager = model._default_manager
            expired = manager.filter(date_done__lt=before).values_list("pk", flat=True)
            while batch := list(expired[:CLEANUP_BATCH]):
                manager.filter(pk__in=batch).delete()
