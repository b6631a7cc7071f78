import pytest

from {{ cookiecutter.project_slug }} import celery_app
from {{ cookiecutter.project_slug }}.celery import debug_task


def test_app_reads_celery_settings(settings):
    assert celery_app.main == "{{ cookiecutter.project_slug }}"
    assert celery_app.conf.broker_url == settings.CELERY_BROKER_URL
    assert celery_app.conf.accept_content == ["json"]
    assert celery_app.conf.task_acks_late is True


@pytest.mark.django_db(transaction=True)
def test_debug_task_runs_on_a_worker(celery_worker, capsys):
    debug_task.delay().get(timeout=10)
    assert "Request: " in capsys.readouterr().out
