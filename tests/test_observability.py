"""The observability options with real parts: a real worker, a real web server and real
requests, read through what receives their logs."""

import json
import secrets

from support.procfile import get, post, wait_until
from support.receivers import SentryReceiver
from support.servers import free_port

# Django takes an unmasked CSRF secret (32 characters) in the cookie and the form alike.
CSRF = secrets.token_hex(16)


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


def test_json_logs_name_the_task_and_the_request_that_sent_it(bake):
    project = bake(use_json_logs="y")
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


def test_sentry_receives_the_errors_of_a_task_and_of_a_view(bake):
    project = bake(use_sentry="y")
    add_failing_view(project)
    with SentryReceiver() as sentry:
        project.env["SENTRY_DSN"] = sentry.dsn
        url = start_site(project)

        assert get(f"{url}/fail/")[0] == 500
        task_id = project.celery("call", "demoapp.tasks.add", "--args", '["two", 3]').strip()

        def event(transaction):
            return lambda item: item["type"] == "event" and item["transaction"] == transaction

        view = sentry.wait_for(event("/fail/"), "event of the view")
        task = sentry.wait_for(event("demoapp.tasks.add"), "event of the task")
    assert exception_of(view) == ("RuntimeError", "a view failed")
    assert view["request"]["url"] == f"{url}/fail/"
    assert exception_of(task)[0] == "TypeError"
    assert task["extra"]["celery-job"]["task_name"] == "demoapp.tasks.add"
    assert task["tags"]["celery_task_id"] == task_id
    assert task["extra"]["celery-job"]["args"] == "[Filtered]"  # no arguments leave the site
