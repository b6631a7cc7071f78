"""
Demo tasks, as in Celery's "First steps with Django".

@shared_task binds each task to whichever Celery app is current, so this
app does not import the project's Celery app. With late acknowledgement a
task may run again after a worker dies: each task says whether that is safe.
"""

import hashlib
import hmac
import time
from numbers import Number

from celery import shared_task
from django.db import transaction

from taskqueue.tasks_api import task

from .models import Counter, Widget

# Bigger inputs are refused rather than tying up a worker and the broker.
MAX_NUMBERS = 10_000


def _check_numbers(values):
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Number):
            raise TypeError(f"expected a number, got {value!r}")


@shared_task
def add(x, y):
    """Return x + y. Idempotent: it has no side effects."""
    _check_numbers([x, y])
    return x + y


@shared_task
def mul(x, y):
    """Return x * y. Idempotent: it has no side effects."""
    _check_numbers([x, y])
    return x * y


@shared_task
def xsum(numbers):
    """Return the sum of a list of numbers. Idempotent: it has no side effects."""
    if not isinstance(numbers, list):
        raise TypeError(f"expected a list of numbers, got {type(numbers).__name__}")
    if len(numbers) > MAX_NUMBERS:
        raise ValueError(f"expected at most {MAX_NUMBERS} numbers, got {len(numbers)}")
    _check_numbers(numbers)
    return sum(numbers)


@shared_task
def count_widgets():
    """Return how many widgets exist. Idempotent: it only reads."""
    return Widget.objects.count()


def _get_widget(widget_id):
    try:
        return Widget.objects.get(pk=widget_id)
    except Widget.DoesNotExist:
        raise Widget.DoesNotExist(f"Widget {widget_id} does not exist") from None


@shared_task
def rename_widget(widget_id, name):
    """Rename a widget. Idempotent: running it twice leaves the same name."""
    widget = _get_widget(widget_id)
    widget.name = name
    widget.save(update_fields=["name"])
    return widget.name


@shared_task
def tidy_widget_name(widget_id):
    """Collapse runs of spaces in a widget's name. Idempotent: a tidy name stays as it is."""
    widget = _get_widget(widget_id)
    widget.name = " ".join(widget.name.split())
    widget.save(update_fields=["name"])
    return widget.name


@shared_task
def increment_counter(name):
    """Add one to a counter, safely under concurrent workers.

    select_for_update() locks the row until the transaction ends, so no two
    tasks read the same value. Not idempotent: a run repeated after a worker
    died counts twice; where that matters, record each task id once.
    """
    with transaction.atomic():
        counter, _ = Counter.objects.select_for_update().get_or_create(name=name)
        counter.value += 1
        counter.save(update_fields=["value"])
    return counter.value


@shared_task
def sign_widget(widget_id, key):
    """Return an HMAC-SHA256 of the widget's name. Idempotent: it only reads.

    `key` is a secret: send this task with argsrepr, so that the arguments
    django-celery-results stores with the result (CELERY_RESULT_EXTENDED) show
    the placeholder instead, e.g.
    sign_widget.apply_async((widget.pk, key), argsrepr=f"({widget.pk}, '<key>')").
    The django-cache backend ignores argsrepr and stores the real arguments.
    """
    name = Widget.objects.values_list("name", flat=True).get(pk=widget_id)
    return hmac.new(key.encode(), name.encode(), hashlib.sha256).hexdigest()


@shared_task(bind=True)
def long_task(self, steps=10, seconds_per_step=1.0):
    """Work through `steps` steps, reporting progress after each.

    Routed to the "long" queue (CELERY_TASK_ROUTES). Idempotent: it has no side effects.
    """
    for step in range(1, steps + 1):
        time.sleep(seconds_per_step)
        self.update_state(state="PROGRESS", meta={"current": step, "total": steps})
    return {"current": steps, "total": steps}


@task
def count_words(text):
    """Return how many words `text` holds. Idempotent: it has no side effects.

    Written with Django's own task API: start it with count_words.enqueue(text).
    It runs on the same Celery workers as the tasks above (taskqueue/task_backend.py).
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a text, got {type(text).__name__}")
    return len(text.split())
