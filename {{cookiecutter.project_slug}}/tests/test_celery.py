import pytest
from kombu.transport import memory

from {{ cookiecutter.project_slug }} import celery_app
from {{ cookiecutter.project_slug }}.celery import debug_task


def test_app_reads_celery_settings(settings):
    assert celery_app.main == "{{ cookiecutter.project_slug }}"
    assert celery_app.conf.result_backend == settings.CELERY_RESULT_BACKEND
    assert celery_app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert list(celery_app.conf.accept_content) == ["json"]  # Celery's default: no pickle


@pytest.mark.django_db(transaction=True)
def test_debug_task_runs_on_a_worker(celery_session_worker, capsys):
    # debug_task ignores its result: store this one to wait for it.
    debug_task.apply_async(ignore_result=False).get(timeout=10)
    assert "Request: " in capsys.readouterr().out


def test_worker_thread_uses_the_in_memory_broker(celery_session_worker, settings):
    # Not the development broker: tasks sent here never reach a running worker.
    transport = celery_session_worker.consumer.connection.transport
    assert type(transport) is memory.Transport
    assert type(celery_app.connection_for_write().transport) is memory.Transport
    assert settings.CELERY_BROKER_URL == celery_app.conf.broker_url == "memory://"
