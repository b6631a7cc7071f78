"""The observability options with real parts: a real worker, a real web server and real
requests, read through what receives their logs, on the embedded default and on Redis +
PostgreSQL. The trace test draws its first trace; to refresh the picture the generated
project ships, name it:

    TRACE_PICTURE='{{cookiecutter.project_slug}}/docs/trace.svg' \
        .venv/bin/python -m pytest tests/test_observability.py -k "trace and embedded"
"""

import json
import os
import secrets
from pathlib import Path

import pytest

from support import waterfall
from support.procfile import get, post, wait_until
from support.receivers import OtlpReceiver, SentryReceiver
from support.servers import free_port, prometheus

# Django takes an unmasked CSRF secret (32 characters) in the cookie and the form alike.
CSRF = secrets.token_hex(16)


# Each test runs on the embedded default and on Redis + PostgreSQL.
on_both = pytest.mark.parametrize(
    "on_servers",
    [False, pytest.param(True, marks=pytest.mark.servers)],
    ids=["embedded-sqlite", "redis-postgresql"],
)


def deployed(project, request, on_servers):
    """The project, moved to Redis and PostgreSQL by its environment when `on_servers`, as a
    deployment would be."""
    if on_servers:
        project.env["CELERY_BROKER_URL"] = request.getfixturevalue("server")("redis").url
        project.env["DATABASE_URL"] = request.getfixturevalue("database_url")("postgresql")
    return project


def start_site(project):
    """Migrate, then start a worker and runserver; return the site's URL."""
    project.manage("migrate", "--no-input")
    project.start_worker()
    port = free_port()
    project.start_web(port)
    return f"http://127.0.0.1:{port}"


def staff_session(project, url):
    """The headers of a logged-in superuser's requests, from a real login to the admin."""
    password = secrets.token_urlsafe(12)
    project.env["DJANGO_SUPERUSER_PASSWORD"] = password
    project.manage("createsuperuser", "--no-input", "--username=admin", "--email=a@example.com")
    csrf = {"Cookie": f"csrftoken={CSRF}"}
    form = {"username": "admin", "password": password, "csrfmiddlewaretoken": CSRF}
    status, headers, _ = post(f"{url}/admin/login/", form, csrf)
    assert status == 302, "the login failed"
    [session] = [c.split(";")[0] for c in headers.get_all("Set-Cookie") if "sessionid" in c]
    return {"Cookie": f"csrftoken={CSRF}; {session}", "X-CSRFToken": CSRF}


def start_task(url, session, task, **arguments):
    """Start a demo task from the dashboard's form: (the request's response headers, task id)."""
    status, headers, body = post(f"{url}/tasks/start/", {"task": task, **arguments}, session)
    assert status == 202, body
    return headers, json.loads(body)["id"]


def json_lines(process):
    """The lines of a process's output that are JSON objects."""
    lines = []
    for line in process.output().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@on_both
def test_json_logs_name_the_task_and_the_request_that_sent_it(bake, request, on_servers):
    project = deployed(bake(use_json_logs="y"), request, on_servers)
    url = start_site(project)
    worker = project.processes[0]

    headers, task_id = start_task(url, staff_session(project, url), "add", x=2, y=3)

    worker.wait_for(f"{task_id}] succeeded")
    [line] = [each for each in json_lines(worker) if "succeeded" in each["message"]]
    assert line["task_id"] == task_id
    assert line["task_name"] == "demoapp.tasks.add"
    assert line["request_id"] == headers["X-Request-ID"]
    assert line["levelname"] == "INFO"
    # The web server's own lines are JSON too.
    status, *_ = get(f"{url}/health/")
    assert status == 200
    web = project.processes[1]
    wait_until(lambda: any("/health/" in each["message"] for each in json_lines(web)), "a line")


def add_failing_view(project):
    """A view at /fail/ that raises, added to the project's URLs."""
    with (project.path / project.slug / "urls.py").open("a") as urls:
        urls.write(
            "\n\ndef fail(request):\n    raise RuntimeError('a view failed')\n\n\n"
            "urlpatterns.append(path('fail/', fail))\n"
        )


def exception_of(event):
    """(type, message) of the exception an event reports."""
    [exception] = event["exception"]["values"]
    return exception["type"], exception["value"]


# A periodic task every minute, last run long enough ago to be due when beat starts.
PERIODIC_TASK = """
from datetime import timedelta
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
PeriodicTask.objects.create(
    name="add every minute", task="demoapp.tasks.add", interval=every_minute, args="[1, 2]",
    last_run_at=timezone.now() - timedelta(minutes=5),
)
"""


@on_both
def test_sentry_receives_errors_and_beat_s_check_ins(bake, request, on_servers):
    project = deployed(bake(use_sentry="y"), request, on_servers)
    add_failing_view(project)
    with SentryReceiver() as sentry:
        project.env["SENTRY_DSN"] = sentry.dsn
        url = start_site(project)

        assert get(f"{url}/fail/")[0] == 500
        task_id = project.celery("call", "demoapp.tasks.add", "--args", '["two", 3]').strip()
        project.manage("shell", "-c", PERIODIC_TASK)
        project.start_beat()  # a beat of its own, not the worker's -B (sentry-python#2823)

        def event(transaction):
            return lambda item: item["type"] == "event" and item["transaction"] == transaction

        def check_in(status):
            return lambda item: item["type"] == "check_in" and item["status"] == status

        view = sentry.wait_for(event("/fail/"), "event of the view")
        task = sentry.wait_for(event("demoapp.tasks.add"), "event of the task")
        started = sentry.wait_for(check_in("in_progress"), "check-in from beat")
        done = sentry.wait_for(check_in("ok"), "check-in from the worker")
    assert exception_of(view) == ("RuntimeError", "a view failed")
    assert view["request"]["url"] == f"{url}/fail/"
    assert exception_of(task)[0] == "TypeError"
    assert task["extra"]["celery-job"]["task_name"] == "demoapp.tasks.add"
    assert task["tags"]["celery_task_id"] == task_id
    assert task["extra"]["celery-job"]["args"] == "[Filtered]"  # no arguments leave the site
    # What Sentry Crons needs to report a run that does not come: the schedule, each run.
    assert started["monitor_slug"] == done["monitor_slug"] == "add every minute"
    assert started["monitor_config"]["schedule"] == {
        "type": "interval",
        "value": 1,
        "unit": "minute",
    }
    assert done["check_in_id"] == started["check_in_id"]


def send_tasks(project, code):
    """Send tasks from `manage.py shell`: `code` after `from demoapp.tasks import add`."""
    project.manage("shell", "-c", f"from demoapp.tasks import add\n{code}")


@on_both
def test_prometheus_scrapes_task_counts_and_queue_lengths(bake, tmp_path, request, on_servers):
    project = deployed(bake(use_prometheus="y"), request, on_servers)
    project.env["METRICS_TOKEN"] = token = secrets.token_urlsafe()
    project.manage("migrate", "--no-input")
    web_port, worker_port = free_port(), free_port()
    project.start_web(web_port)
    jobs = [
        {
            "job_name": "web",
            "metrics_path": "/metrics/",
            "authorization": {"credentials": token},
            "static_configs": [{"targets": [f"127.0.0.1:{web_port}"]}],
        },
        {"job_name": "worker", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
    ]
    server = prometheus(tmp_path / "prometheus", jobs)

    def wait_for(expression, expected):
        def found():
            result = server.query(expression)
            return result and float(result[0]["value"][1]) == expected

        wait_until(found, f"{expression} == {expected}")

    try:
        wait_for('up{job="worker"}', 0)
        send_tasks(project, "for i in range(8): add.delay(i if i < 6 else 'x', i)")  # 2 fail
        wait_for('celery_queue_length{queue="celery"}', 8)  # no worker runs
        wait_for('celery_queue_length{queue="long"}', 0)

        project.start_worker("worker", "--metrics-port", worker_port)
        wait_for('up{job="worker"}', 1)
        wait_for('celery_queue_length{queue="celery"}', 0)
        task = 'task="demoapp.tasks.add"'
        wait_for(f'celery_tasks_total{{{task}, state="SUCCESS"}}', 6)
        wait_for(f'celery_tasks_total{{{task}, state="FAILURE"}}', 2)
        wait_for(f"celery_tasks_received_total{{{task}}}", 8)
        wait_for(f"celery_task_runtime_seconds_count{{{task}}}", 8)
        wait_for(f"celery_task_wait_seconds_count{{{task}}}", 8)
        # Each waited at least from its sending to the worker's start.
        wait_for(f'celery_task_wait_seconds_bucket{{{task}, le="0.01"}}', 0)
    finally:
        server.stop()


def sent(task_id):
    """Whether a span is the sending of that task."""
    return lambda span: (
        span["kind"] == "SPAN_KIND_PRODUCER"
        and span["attributes"].get("messaging.message.id") == task_id
    )


def run_of(publish):
    """Whether a span is the run of the task whose sending is `publish`."""
    return lambda span: (
        span["kind"] == "SPAN_KIND_CONSUMER" and span["parent_id"] == publish["span_id"]
    )


def query_of(parent):
    """Whether a span is a database query made under `parent`."""
    return lambda span: (
        span["kind"] == "SPAN_KIND_CLIENT" and span["parent_id"] == parent["span_id"]
    )


@on_both
def test_a_request_and_the_task_it_sends_form_one_trace(bake, request, on_servers):
    project = deployed(bake(use_opentelemetry="y"), request, on_servers)
    with OtlpReceiver() as otlp:
        project.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.endpoint
        project.manage("migrate", "--no-input")
        # One pool process, replaced after each task.
        worker = project.start_worker("worker", "--concurrency=1", "--max-tasks-per-child=1")
        # The web process sends its spans every 0.1 s rather than every 5 (the worker keeps
        # the SDK's default: its pool processes exit long before).
        project.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
        port = free_port()
        web = project.start_web(port)
        url = f"http://127.0.0.1:{port}"
        session = staff_session(project, url)

        database = "postgresql" if on_servers else "sqlite"
        runs = []
        for x in range(3):
            _, task_id = start_task(url, session, "add", x=x, y=1)
            publish = otlp.wait_for(sent(task_id), "publish span")
            run = otlp.wait_for(run_of(publish), "run span")
            request = otlp.wait_for(lambda span: span["span_id"] == publish["parent_id"])  # noqa: B023
            assert request["kind"] == "SPAN_KIND_SERVER"
            assert request["name"] == "POST tasks/start/"
            assert run["name"] == "run/demoapp.tasks.add"
            # The session's lookup, and the result's storing.
            for parent in (request, run):
                query = otlp.wait_for(query_of(parent), f"query under {parent['name']}")
                assert query["attributes"]["db.system"] == database
            assert request["trace_id"] == publish["trace_id"] == run["trace_id"]
            assert request["pid"] == publish["pid"] == web.pid
            assert run["pid"] != worker.pid  # a pool process
            runs.append(run)
        # The first: its pool process was waiting for it (the others waited for theirs to start).
        trace = [span for span in otlp.items() if span["trace_id"] == runs[0]["trace_id"]]
    # Each run was its pool process's last, and its span arrived all the same.
    assert len({run["pid"] for run in runs}) == 3
    picture = waterfall.svg(trace, {web.pid: "web"})
    if (target := os.environ.get("TRACE_PICTURE")) and not on_servers:
        Path(target).write_text(picture)
