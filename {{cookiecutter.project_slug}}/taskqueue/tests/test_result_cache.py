import uuid

import pytest
from celery import current_app as celery_app

from taskqueue.tasks_api import default_task_backend, task


@task
def double(number):
    return number * 2


@pytest.mark.django_db
def test_results_are_kept_past_djangos_default_cache_size():
    # Django's database cache deletes a third of its entries once it holds
    # MAX_ENTRIES (300 by default), whether or not they have been read.
    count = 400
    task_ids = [str(uuid.uuid4()) for _ in range(count)]
    for number, task_id in enumerate(task_ids):
        celery_app.backend.store_result(task_id, number, "SUCCESS")
    assert [celery_app.backend.get_result(task_id) for task_id in task_ids] == list(range(count))


@pytest.mark.django_db(transaction=True)
def test_django_tasks_run_but_results_are_not_read_back(celery_session_worker):
    """django.tasks' get_result() reads TaskResult rows, which this backend does not keep."""
    result = double.enqueue(21)
    assert celery_app.AsyncResult(result.id).get(timeout=10) == 42
    assert not default_task_backend.supports_get_result
    with pytest.raises(NotImplementedError):
        result.refresh()
