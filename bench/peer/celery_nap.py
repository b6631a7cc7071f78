"""The peers' I/O-bound task for the generated project: its worker imports this module
(CELERY_IMPORTS, set by bench/peers.py); the project itself has no such task."""

import time

from celery import shared_task


@shared_task
def nap():
    """The I/O-bound task: 50 ms asleep."""
    time.sleep(0.05)
    return True
