import pytest

from {{ cookiecutter.project_slug }} import celery_app
from {{ cookiecutter.project_slug }}.celery import debug_task


def test_app_reads_celery_settings(settings):
    assert celery_app.main == "{{ cookiecutter.project_slug }}"
    assert celery_app.conf.result_backend == settings.CELERY_RESULT_BACKEND
    assert celery_app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert celery_app.conf.accept_content == ["json"]


@pytest.mark.django_db(transaction=True)
def test_debug_task_runs_on_a_worker(celery_session_worker, capsys):
    # debug_task ignores its result: store this one to wait for it.
    debug_task.apply_async(ignore_result=False).get(timeout=10)
    assert "Request: " in capsys.readouterr().out
