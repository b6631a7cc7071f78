"""
Demo tasks, as in Celery's "First steps with Django".

@shared_task binds each task to whichever Celery app is current, so this
app does not import the project's Celery app. Every task here is idempotent:
with late acknowledgement a task may run again after a worker dies.
"""

import time

from celery import shared_task

from .models import Widget


@shared_task
def add(x, y):
    """Return x + y. Idempotent: it has no side effects."""
    return x + y


@shared_task
def mul(x, y):
    """Return x * y. Idempotent: it has no side effects."""
    return x * y


@shared_task
def xsum(numbers):
    """Return the sum of a list of numbers. Idempotent: it has no side effects."""
    return sum(numbers)


@shared_task
def count_widgets():
    """Return how many widgets exist. Idempotent: it only reads."""
    return Widget.objects.count()


@shared_task
def rename_widget(widget_id, name):
    """Rename a widget. Idempotent: running it twice leaves the same name."""
    try:
        widget = Widget.objects.get(pk=widget_id)
    except Widget.DoesNotExist:
        raise Widget.DoesNotExist(f"Widget {widget_id} does not exist") from None
    widget.name = name
    widget.save(update_fields=["name"])
    return widget.name


@shared_task(bind=True)
def long_task(self, steps=10, seconds_per_step=1.0):
    """Work through `steps` steps, reporting progress after each.

    Routed to the "long" queue (CELERY_TASK_ROUTES). Idempotent: it has no side effects.
    """
    for step in range(1, steps + 1):
        time.sleep(seconds_per_step)
        self.update_state(state="PROGRESS", meta={"current": step, "total": steps})
    return {"current": steps, "total": steps}
