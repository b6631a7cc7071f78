import time
import uuid

import pytest
from django.urls import reverse
{%- if cookiecutter.use_celery_beat == "y" %}
from django_celery_beat.models import IntervalSchedule, PeriodicTask
{%- endif %}

from demoapp.tasks import add, long_task, rename_widget

# The worker runs in a thread with its own database connection: the test's
# rows must be committed for it to see them.
pytestmark = pytest.mark.django_db(transaction=True)

START = reverse("demoapp:start_task")


def status_url(task_id):
    return reverse("demoapp:task_status", args=[task_id])


def status(client, task_id):
    response = client.get(status_url(task_id))
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def user_client(client, django_user_model):
    """A client logged in as a user who is not staff."""
    client.force_login(django_user_model.objects.create_user("visitor"))
    return client


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", reverse("demoapp:tasks")), ("post", START), ("get", status_url(uuid.uuid4()))],
)
def test_anonymous_users_are_sent_to_the_login_page(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response.url == f"{reverse('admin:login')}?next={url}"


def test_users_who_are_not_staff_see_the_page_but_cannot_start_tasks(user_client):
    page = user_client.get(reverse("demoapp:tasks"))
    assert page.status_code == 200
    assert START not in page.content.decode()
    assert "Starting tasks needs a staff account." in page.content.decode()

    response = user_client.post(START, {"task": "add", "x": 2, "y": 3})
    assert response.status_code == 403
    assert response.json() == {"error": "Starting tasks needs a staff account."}


def test_staff_start_a_task_and_follow_it_to_its_result(admin_client, celery_session_worker):
    assert START in admin_client.get(reverse("demoapp:tasks")).content.decode()

    response = admin_client.post(START, {"task": "add", "x": 2, "y": 3})
    assert response.status_code == 202
    started = response.json()
    assert started["kwargs"] == {"x": 2, "y": 3}
    assert started["status_url"] == status_url(started["id"])
    assert add.AsyncResult(started["id"]).get(timeout=10) == 5

    assert status(admin_client, started["id"]) == {
        "id": started["id"],
        "state": "SUCCESS",
        "known": True,
        "progress": None,
        "result": 5,
        "error": None,
    }


def test_staff_start_a_task_written_with_djangos_task_api(admin_client, celery_session_worker):
    response = admin_client.post(START, {"task": "count_words", "text": "one two"})
    assert response.status_code == 202
    task_id = response.json()["id"]
    assert add.AsyncResult(task_id).get(timeout=10) == 2
    assert status(admin_client, task_id)["result"] == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"task": "add", "x": "two", "y": 3}, "x"),
        ({"task": "mul", "x": 4}, "y"),
        ({"task": "xsum", "numbers": "1, two, 3"}, "numbers"),
        ({"task": "xsum", "numbers": "1 " * 10_001}, "numbers"),
        ({"task": "rename_widget", "widget_id": 1, "name": ""}, "name"),
        ({"task": "long_task", "steps": 0}, "steps"),
        ({"task": "no_such_task"}, "task"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(admin_client, data, field):
    response = admin_client.post(START, data)
    assert response.status_code == 400
    answer = response.json()
    assert list(answer["fields"]) == [field]
    assert answer["error"].startswith(f"{field}: ")


def test_a_malformed_task_id_is_refused(admin_client):
    response = admin_client.get(status_url("not-a-task-id"))
    assert response.status_code == 400
    assert response.json()["error"] == "id: 'not-a-task-id' is not a task id (a UUID)."


def test_an_unknown_task_is_pending_and_said_to_be_unknown(admin_client):
    task_id = str(uuid.uuid4())
    assert status(admin_client, task_id) == {
        "id": task_id,
        "state": "PENDING",
        "known": False,
        "progress": None,
        "result": None,
        "error": None,
    }


def test_a_failed_task_reports_its_error(admin_client, celery_session_worker):
    result = rename_widget.delay(999_999, "new")
    with pytest.raises(Exception, match="Widget 999999 does not exist"):
        result.get(timeout=10)
    answer = status(admin_client, result.id)
    assert answer["state"] == "FAILURE"
    assert answer["result"] is None
    assert answer["error"].endswith("Widget 999999 does not exist")


def test_a_long_task_reports_its_progress(admin_client, celery_session_worker):
    result = long_task.delay(steps=10, seconds_per_step=0.05)
    progress = []
    deadline = time.monotonic() + 15
    while (answer := status(admin_client, result.id))["state"] != "SUCCESS":
        assert time.monotonic() < deadline, answer
        if answer["progress"]:
            progress.append(answer["progress"])
        time.sleep(0.01)
    assert progress, "no PROGRESS state seen"
    assert all(step["total"] == 10 for step in progress)
    currents = [step["current"] for step in progress]
    assert currents == sorted(currents)
    assert currents[0] < 10
    assert answer["result"] == {"current": 10, "total": 10}
{%- if cookiecutter.result_backend == "django-db" %}


def test_the_page_lists_recent_results(admin_client, celery_session_worker):
    add.delay(2, 3).get(timeout=10)
    page = admin_client.get(reverse("demoapp:tasks")).content.decode()
    assert "demoapp.tasks.add" in page
    assert 'data-state="SUCCESS"' in page
    assert " s</td>" in page  # the runtime
{%- else %}


def test_the_page_says_why_it_lists_no_results(admin_client):
    page = admin_client.get(reverse("demoapp:tasks")).content.decode()
    assert "This result backend keeps no list of results" in page
{%- endif %}
{%- if cookiecutter.use_celery_beat == "y" %}


def test_the_page_lists_periodic_tasks(admin_client):
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="count", task="demoapp.tasks.count_widgets", interval=every)
    page = admin_client.get(reverse("demoapp:tasks")).content.decode()
    assert "<td>count</td>" in page
    assert "every 5 minutes" in page
{%- endif %}
