from django.db import models


class BeatLease(models.Model):
    """The one row that says which `celery beat` sends the periodic tasks: its holder, until
    it expires. Each beat renews it at every tick; another beat stands by (taskqueue/beat.py).
    """

    holder = models.CharField(max_length=255)
    expires = models.DateTimeField()

    def __str__(self):
        return f"{self.holder} until {self.expires}"
