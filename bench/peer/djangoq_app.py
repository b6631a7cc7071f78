"""django-q2 with its Django ORM broker: the `add` task and the adapter bench/peer/client.py
drives. Tasks and results are rows in the SQLite database (django_settings.py)."""

import django

django.setup()

from django_q.models import OrmQ, Task  # noqa: E402
from django_q.tasks import async_task, result  # noqa: E402


def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y


def send(x, y):
    return async_task("djangoq_app.add", x, y)


def read(task_id):
    return result(task_id)  # None until the cluster has saved it


def reset():
    OrmQ.objects.all().delete()
    Task.objects.all().delete()
