"""Baseline (a): Celery alone, Redis broker and Redis results, every other setting Celery's default.

No Django: the ceiling of this machine for the benchmark's task. Celery reads the broker and
the result backend from CELERY_BROKER_URL and CELERY_RESULT_BACKEND in the environment.
The worker is `celery -A bare worker` with bench/ on PYTHONPATH.
"""

from celery import Celery

app = Celery("bare")


@app.task
def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y
