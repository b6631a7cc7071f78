"""Beat's scheduler (CELERY_BEAT_SCHEDULER): django-celery-beat's, one at a time, showing
it is alive.

- One beat sends the periodic tasks: the one holding the lease (a BeatLease row), which it
  renews at every tick for BEAT_LEASE_SECONDS (30 by default). A second beat, started by
  mistake or as a standby on another machine, sends nothing until the lease expires: when
  the first is stopped (it gives the lease back), killed, or cut off from the database.
  Expiry is the database's clock, so the machines' clocks need not agree.
- Beat answers no `celery inspect ping`. This scheduler touches a file at every tick
  instead (at least every 5 s), which `python manage.py checkbeat` reads, and under
  systemd it pings the unit's watchdog (Type=notify, WatchdogSec=). A beat standing by
  ticks too.
"""

import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django_celery_beat.schedulers import DatabaseScheduler

from .models import BeatLease

logger = logging.getLogger(__name__)

EXPIRED = datetime(2000, 1, 1, tzinfo=timezone.utc)


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


class Lease:
    """The right to send the periodic tasks, held by one beat at a time."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.holder = f"{socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"
        self.created = False

    def renew(self):
        """Hold the lease for `seconds` more if this beat holds it or it expired; whether
        this beat holds it now. One UPDATE decides, so two beats never both win."""
        if not self.created:
            BeatLease.objects.bulk_create(
                [BeatLease(pk=1, holder="", expires=EXPIRED)], ignore_conflicts=True
            )
            self.created = True
        until = ExpressionWrapper(Now() + timedelta(seconds=self.seconds), DateTimeField())
        ours_or_expired = Q(holder=self.holder) | Q(expires__lt=Now())
        return bool(
            BeatLease.objects.filter(ours_or_expired, pk=1).update(
                holder=self.holder, expires=until
            )
        )

    def release(self):
        BeatLease.objects.filter(pk=1, holder=self.holder).update(expires=EXPIRED)

    def holder_now(self):
        return BeatLease.objects.filter(pk=1).values_list("holder", flat=True).first()


class Scheduler(DatabaseScheduler):
    """django-celery-beat's scheduler, sending only while it holds the lease, and recording
    each tick."""

    def __init__(self, *args, **kwargs):
        self.lease = Lease(int(os.environ.get("BEAT_LEASE_SECONDS", 30)))
        self.holding = None  # not known before the first tick
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        if self.hold_lease():
            interval = super().tick(*args, **kwargs)
        else:  # try again well before the holder's lease could expire
            interval = min(self.max_interval, self.lease.seconds / 3)
        heartbeat_file().touch()
        notify_systemd("READY=1\nWATCHDOG=1")
        return interval

    def hold_lease(self):
        try:
            holding = self.lease.renew()
        except (DatabaseError, InterfaceError) as exc:
            close_old_connections()
            logger.warning("beat: cannot renew its lease, so sends nothing: %s", exc)
            holding = False
        if holding and not self.holding:
            logger.info("beat: %s holds the lease: sending periodic tasks", self.lease.holder)
            # Read each task's last run again: another beat may have sent it meanwhile.
            self._initial_read, self._heap = True, None
        elif self.holding is not False and not holding:
            with contextlib.suppress(DatabaseError, InterfaceError):
                logger.info("beat: %s holds the lease: standing by", self.lease.holder_now())
        self.holding = holding
        return holding

    def close(self):
        super().close()
        if self.holding:  # the next beat need not wait for the lease to expire
            with contextlib.suppress(DatabaseError, InterfaceError):
                self.lease.release()
