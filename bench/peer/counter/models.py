"""The read-modify-write counter of the generated project's demoapp, for the Django peers."""

from django.db import models, transaction


class Counter(models.Model):
    name = models.CharField(max_length=140, unique=True)
    value = models.PositiveBigIntegerField(default=0)


def increment(name):
    """demoapp.tasks.increment_counter's body: the row locked until the transaction ends
    (select_for_update; on SQLite, the IMMEDIATE transaction takes the write lock)."""
    with transaction.atomic():
        counter, _ = Counter.objects.select_for_update().get_or_create(name=name)
        counter.value += 1
        counter.save(update_fields=["value"])
    return counter.value


def value(name):
    return Counter.objects.get(name=name).value
