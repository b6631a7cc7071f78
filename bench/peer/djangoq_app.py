"""django-q2 with its Django ORM broker: the `add` task and the adapter bench/peer/client.py
drives. Tasks and results are rows in the SQLite database (django_settings.py)."""

import time

import django

django.setup()

from counter.models import increment, value  # noqa: E402, F401 - value: the client's
from django_q.models import OrmQ, Task  # noqa: E402
from django_q.tasks import async_task, result  # noqa: E402


def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y


def nap():
    """The I/O-bound task: 50 ms asleep."""
    time.sleep(0.05)
    return True


def increment_counter(name):
    return increment(name)


def send(x, y):
    return async_task("djangoq_app.add", x, y)


def send_counter(name):
    return async_task("djangoq_app.increment_counter", name)


def send_nap():
    return async_task("djangoq_app.nap")


def read(task_id):
    return result(task_id)  # None until the cluster has saved it


def stored():
    return Task.objects.filter(success=True).count()


def reset():
    OrmQ.objects.all().delete()
    Task.objects.all().delete()
