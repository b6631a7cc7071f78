import uuid

import pytest

from {{ cookiecutter.project_slug }} import celery_app


@pytest.mark.django_db
def test_results_are_kept_past_djangos_default_cache_size():
    # Django's database cache deletes a third of its entries once it holds
    # MAX_ENTRIES (300 by default), whether or not they have been read.
    count = 400
    task_ids = [str(uuid.uuid4()) for _ in range(count)]
    for number, task_id in enumerate(task_ids):
        celery_app.backend.store_result(task_id, number, "SUCCESS")
    assert [celery_app.backend.get_result(task_id) for task_id in task_ids] == list(range(count))
