"""What the workers count and the web process reports for Prometheus (taskqueue/metrics.py)."""

import os
import select

import pytest
from celery import shared_task
from django.urls import reverse

from taskqueue import metrics


@shared_task
def succeeds():
    return 1


@shared_task
def fails():
    raise ValueError("as planned")


def counts():
    """What the worker's metrics count of these tests' tasks."""
    sample = metrics.worker_metrics.get_sample_value
    return {
        "succeeded": sample("celery_tasks_total", {"task": succeeds.name, "state": "SUCCESS"}),
        "failed": sample("celery_tasks_total", {"task": fails.name, "state": "FAILURE"}),
        "runs": sample("celery_task_runtime_seconds_count", {"task": succeeds.name}),
        "waits": sample("celery_task_wait_seconds_count", {"task": succeeds.name}),
    }


def read_reports(read_fd, count):
    """The next `count` lines pool processes write to the pipe, as the worker's thread
    reads them: a task's result is stored before its report is written."""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:  # select() sees what is unread
        for _ in range(count):
            assert select.select([pipe], [], [], 10)[0], "no report within 10 s"
            yield pipe.readline()


@pytest.mark.django_db(transaction=True)
def test_pool_processes_report_each_run_to_the_worker(celery_session_worker, monkeypatch):
    read_fd, write_fd = os.pipe()
    monkeypatch.setattr(metrics, "report_fd", write_fd)
    before = counts()
    assert succeeds.delay().get(timeout=10) == 1
    with pytest.raises(ValueError):
        fails.delay().get(timeout=10)
    for report in read_reports(read_fd, 2):
        metrics.record(report)
    os.close(write_fd)

    after = counts()
    assert {key: after[key] - (before[key] or 0) for key in after} == dict.fromkeys(after, 1)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic s3cret"])
def test_queue_metrics_answer_only_the_token_s_bearer(client, settings, authorization):
    settings.METRICS_TOKEN = "s3cret"
    headers = {"Authorization": authorization} if authorization else {}
    assert client.get(reverse("metrics"), headers=headers).status_code == 404


def test_queue_metrics_answer_no_one_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get(reverse("metrics"), headers={"Authorization": "Bearer "})
    assert response.status_code == 404


def test_queue_metrics_report_each_queue(client, settings):
    settings.METRICS_TOKEN = "s3cret"
    response = client.get(reverse("metrics"), headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    for queue in settings.CELERY_TASK_QUEUES:
        assert 'celery_queue_length{queue="' + queue.name + '"} 0.0' in lines


def test_queue_metrics_are_served_over_plain_http_too(client, settings):
    # Prometheus may scrape a web process directly, behind the proxy that ends TLS.
    settings.SECURE_SSL_REDIRECT = True
    settings.METRICS_TOKEN = "s3cret"
    response = client.get(reverse("metrics"), headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200
    assert client.get("/admin/login/").status_code == 301  # the rest of the site is not
