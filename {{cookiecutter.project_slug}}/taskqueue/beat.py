"""Beat's scheduler (CELERY_BEAT_SCHEDULER): django-celery-beat's, showing it is alive.

Beat answers no `celery inspect ping`. This scheduler touches a file at every tick
instead (at least every 5 s), which `python manage.py checkbeat` reads, and under
systemd it pings the unit's watchdog (Type=notify, WatchdogSec=).
"""

import contextlib
import os
import socket
from pathlib import Path

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler


def heartbeat_file():
    """The file beat touches: BEAT_HEARTBEAT, or celerybeat-heartbeat in the project."""
    return Path(os.environ.get("BEAT_HEARTBEAT", settings.BASE_DIR / "celerybeat-heartbeat"))


def notify_systemd(message):
    """Send `message` to systemd's notification socket, if this process has one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        # Never wait: a ping systemd has no room for is skipped, the next tick sends one.
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.sendto(message.encode(), address)


class Scheduler(DatabaseScheduler):
    """django-celery-beat's scheduler, recording each tick."""

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        heartbeat_file().touch()
        notify_systemd("READY=1\nWATCHDOG=1")
        return interval
