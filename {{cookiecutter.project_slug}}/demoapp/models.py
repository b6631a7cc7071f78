from django.db import models


class Widget(models.Model):
    name = models.CharField(max_length=140)

    def __str__(self):
        return self.name


class Counter(models.Model):
    """A value many tasks update at once: see tasks.increment_counter."""

    name = models.CharField(max_length=140, unique=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name} = {self.value}"
