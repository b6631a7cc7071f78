import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from celery import current_app as celery_app
from celery import shared_task, states
from celery.exceptions import TimeoutError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskqueue import results

pytestmark = pytest.mark.django_db


def statements(queries):
    """The SQL statements run, without the transaction's BEGIN and COMMIT."""
    sql = [query["sql"] for query in queries]
    return [each for each in sql if each.split()[0].upper() not in ("BEGIN", "COMMIT")]


def test_each_state_change_is_one_statement():
    task_id = str(uuid.uuid4())
    for status, result in [(states.STARTED, None), (states.SUCCESS, 5)]:
        with CaptureQueriesContext(connection) as queries:
            celery_app.backend.store_result(task_id, result, status)
        [statement] = statements(queries)
        assert statement.upper().startswith("INSERT")

    row = TaskResult.objects.get(task_id=task_id)
    assert (row.status, row.result) == (states.SUCCESS, "5")
    assert row.date_started is not None  # kept from STARTED


def test_cleanup_deletes_expired_results_in_batches(monkeypatch):
    monkeypatch.setattr(results, "CLEANUP_BATCH", 10)
    expired = timezone.now() - celery_app.conf.result_expires - timedelta(minutes=1)
    TaskResult.objects.bulk_create(
        TaskResult(task_id=str(uuid.uuid4()), status=states.SUCCESS) for _ in range(25)
    )
    TaskResult.objects.update(date_done=expired)  # date_done is set on every save
    fresh = TaskResult.objects.create(task_id=str(uuid.uuid4()), status=states.SUCCESS)
    pauses = []
    clock = SimpleNamespace(monotonic=time.monotonic, sleep=pauses.append)
    monkeypatch.setattr(results, "time", clock)

    with CaptureQueriesContext(connection) as queries:
        celery_app.backend.cleanup()

    assert list(TaskResult.objects.all()) == [fresh]
    deletes = [sql for sql in statements(queries) if sql.upper().startswith("DELETE")]
    assert len(deletes) == 3
    # On SQLite a worker waiting to store a result gets the write lock between batches.
    assert len(pauses) == (3 if connection.vendor == "sqlite" else 0)


@shared_task
def slow_double(number):
    time.sleep(0.05)
    return number * 2


@pytest.mark.django_db(transaction=True)
def test_get_waits_for_the_result(celery_session_worker):
    assert slow_double.delay(21).get(timeout=10) == 42
    with pytest.raises(TimeoutError):
        celery_app.AsyncResult(str(uuid.uuid4())).get(timeout=0.05)
