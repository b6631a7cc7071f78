import pytest
{%- if cookiecutter.result_backend == "django-db" %}
from django_celery_results.models import TaskResult
{%- endif %}

from demoapp.models import Counter, Widget
from demoapp.tasks import (
    add,
    count_widgets,
    count_words,
    increment_counter,
    mul,
    rename_widget,
{%- if cookiecutter.result_backend == "django-db" %}
    sign_widget,
{%- endif %}
    tidy_widget_name,
    xsum,
)

# The worker runs in a thread with its own database connection: the test's
# rows must be committed for it to see them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("task", "args", "expected"),
    [(add, (2, 3), 5), (mul, (4, 5), 20), (xsum, ([1, 2, 3, 4],), 10)],
)
def test_arithmetic_tasks(celery_session_worker, task, args, expected):
    result = task.delay(*args)
    assert result.get(timeout=10) == expected
{%- if cookiecutter.result_backend == "django-db" %}
    stored = TaskResult.objects.get(task_id=result.id)
    assert stored.status == "SUCCESS"
    assert stored.task_name == task.name
{%- else %}
    assert result.name == task.name  # extended results, from the cache table
{%- endif %}


def test_count_widgets(celery_session_worker):
    Widget.objects.bulk_create(Widget(name=f"widget {i}") for i in range(3))
    assert count_widgets.delay().get(timeout=10) == 3


def test_rename_widget(celery_session_worker):
    widget = Widget.objects.create(name="old")
    assert rename_widget.delay(widget.pk, "new").get(timeout=10) == "new"
    widget.refresh_from_db()
    assert widget.name == "new"


@pytest.mark.parametrize(("task", "args"), [(rename_widget, ("new",)), (tidy_widget_name, ())])
def test_missing_widget_fails_and_worker_goes_on(celery_session_worker, task, args):
    result = task.delay(999_999, *args)
    with pytest.raises(Exception, match="Widget 999999 does not exist"):
        result.get(timeout=10)
    assert result.state == "FAILURE"
    assert add.delay(1, 1).get(timeout=10) == 2


@pytest.mark.parametrize(
    ("task", "args", "error"),
    [
        (add, (1, "2"), "expected a number, got '2'"),
        (mul, (None, 2), "expected a number, got None"),
        (xsum, ("1, 2",), "expected a list of numbers, got str"),
        (xsum, ([1] * 10_001,), "expected at most 10000 numbers, got 10001"),
    ],
)
def test_bad_arguments_fail_clearly(celery_session_worker, task, args, error):
    result = task.delay(*args)
    with pytest.raises(Exception, match=error):
        result.get(timeout=10)
    assert result.state == "FAILURE"
    assert add.delay(2, 2).get(timeout=10) == 4  # the worker goes on


def test_count_words_runs_on_the_worker_through_djangos_task_api(celery_session_worker):
    result = count_words.enqueue("three short words")
    assert add.AsyncResult(result.id).get(timeout=10) == 3  # any task's AsyncResult reads any id
{%- if cookiecutter.result_backend == "django-db" %}
    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", 3)
{%- endif %}


def test_increment_counter(celery_session_worker):
    results = [increment_counter.delay("hits") for _ in range(20)]
    assert sorted(result.get(timeout=10) for result in results) == list(range(1, 21))
    assert Counter.objects.get(name="hits").value == 20

{%- if cookiecutter.result_backend == "django-db" %}


def test_sign_widget_keeps_its_key_out_of_the_stored_result(celery_session_worker):
    widget = Widget.objects.create(name="signed")
    key = "not-for-the-results-table"
    result = sign_widget.apply_async((widget.pk, key), argsrepr=f"({widget.pk}, '<key>')")
    assert len(result.get(timeout=10)) == 64
    stored = TaskResult.objects.get(task_id=result.id)
    assert key not in stored.task_args
    assert "<key>" in stored.task_args
{%- endif %}
