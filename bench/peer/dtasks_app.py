"""django-tasks-db, the database backend of Django's Tasks framework (the django-tasks
backport on Django 5.2): the `add` task and the adapter bench/peer/client.py drives.
Tasks and results are DBTaskResult rows in the SQLite database (django_settings.py)."""

import time

import django

django.setup()

from counter.models import increment, value  # noqa: E402, F401 - value: the client's
from django_tasks import TaskResultStatus, default_task_backend, task  # noqa: E402
from django_tasks_db.models import DBTaskResult  # noqa: E402


@task()
def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y


@task()
def nap():
    """The I/O-bound task: 50 ms asleep."""
    time.sleep(0.05)
    return True


@task()
def increment_counter(name):
    return increment(name)


def send(x, y):
    return add.enqueue(x, y).id


def send_counter(name):
    return increment_counter.enqueue(name).id


def send_nap():
    return nap.enqueue().id


def read(task_id):
    result = default_task_backend.get_result(task_id)
    return result.return_value if result.status == TaskResultStatus.SUCCESSFUL else None


def stored():
    return DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count()


def reset():
    DBTaskResult.objects.all().delete()
