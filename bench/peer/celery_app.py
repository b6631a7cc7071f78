"""The generated project (run from its folder, PEER_SLUG its package), through the same
client as the peers: for the kill -9 check, which bench/inproject.py does not do."""

import os

from inproject import load

add = load(os.environ["PEER_SLUG"])


def send(x, y):
    return add.delay(x, y).id


def read(task_id):
    result = add.AsyncResult(task_id)
    return result.result if result.successful() else None


def reset():
    from django_celery_results.models import TaskResult

    TaskResult.objects.all().delete()
