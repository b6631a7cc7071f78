"""The generated project (run from its folder, PEER_SLUG its package), through the same
client as the peers: for the kill -9 check and the counter, which support/inproject.py does
not do."""

import os

from support.inproject import load

add = load(os.environ["PEER_SLUG"])
from celery_nap import nap  # noqa: E402 - CELERY_IMPORTS in the worker (bench/peers.py)
from demoapp.models import Counter  # noqa: E402 - after load(): django.setup()
from demoapp.tasks import increment_counter  # noqa: E402
from django_celery_results.models import TaskResult  # noqa: E402


def send(x, y):
    return add.delay(x, y).id


def send_counter(name):
    return increment_counter.delay(name).id


def value(name):
    return Counter.objects.get(name=name).value


def send_nap():
    return nap.delay().id


def read(task_id):
    result = add.AsyncResult(task_id)
    return result.result if result.successful() else None


def stored():
    return TaskResult.objects.filter(status="SUCCESS").count()


def reset():
    TaskResult.objects.all().delete()
    add.app.control.purge()  # no tasks left waiting from an earlier run
