import os
import socket
import time
from datetime import timedelta

import pytest
from celery import current_app as celery_app
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from taskqueue.beat import Scheduler
from taskqueue.models import BeatLease

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_celery_beat_periodictask_changelist")
ADD = reverse("admin:django_celery_beat_periodictask_add")


@pytest.fixture
def periodic_task():
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(name="hourly", task="celery.backend_cleanup", interval=every)


def log_in_staff(client, *codenames):
    codenames = ("view_periodictask", "change_periodictask", "add_periodictask", *codenames)
    user = User.objects.create_user("staff", password="unused", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)


def run_selected(client, task):
    response = client.post(
        CHANGELIST, {"action": "run_tasks", "_selected_action": [task.pk]}, follow=True
    )
    return [str(message) for message in response.context["messages"]]


def test_staff_without_the_permission_cannot_start_a_task(client, periodic_task):
    log_in_staff(client)
    actions = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert "run_tasks" not in actions
    assert run_selected(client, periodic_task) == ["No action selected."]
    assert client.get(ADD).context["adminform"].form.fields["task"].disabled


def test_the_permission_allows_starting_a_task(client, periodic_task):
    log_in_staff(client, "run_periodictask")
    assert run_selected(client, periodic_task) == ["1 task was successfully run"]
    assert not client.get(ADD).context["adminform"].form.fields["task"].disabled


@pytest.fixture
def heartbeat(tmp_path, monkeypatch):
    path = tmp_path / "heartbeat"
    monkeypatch.setenv("BEAT_HEARTBEAT", str(path))
    return path


@pytest.fixture
def scheduler():
    """scheduler(): a new beat scheduler, closed at the end of the test while its database
    is still there: django-celery-beat would otherwise save its schedule as Python exits,
    into a test database that is gone by then, and log an error for each."""
    made = []

    def make():
        made.append(Scheduler(app=celery_app))
        return made[-1]

    yield make
    for each in made:
        each.close()


# Beat closes the connection when it finds it inside a transaction, as a test's is.
@pytest.mark.django_db(transaction=True)
def test_checkbeat_passes_only_while_beat_ticks(heartbeat, scheduler):
    with pytest.raises(CommandError, match="beat has not ticked"):
        call_command("checkbeat")
    scheduler().tick()
    call_command("checkbeat", "--max-age", "60")
    an_hour_ago = time.time() - 3600
    os.utime(heartbeat, (an_hour_ago, an_hour_ago))
    with pytest.raises(CommandError, match="beat last ticked 3600 s ago"):
        call_command("checkbeat", "--max-age", "60")


@pytest.mark.django_db(transaction=True)
def test_each_tick_pings_systemds_watchdog(heartbeat, scheduler, tmp_path, monkeypatch):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(tmp_path / "notify"))
        systemd.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        scheduler().tick()
        assert systemd.recv(100) == b"READY=1\nWATCHDOG=1"


def test_beat_uses_this_scheduler(settings):
    assert celery_app.conf.beat_scheduler == settings.CELERY_BEAT_SCHEDULER
    assert settings.CELERY_BEAT_SCHEDULER == "taskqueue.beat:Scheduler"


LONG_AGO = timezone.now() - timedelta(hours=1)


@pytest.fixture
def sent(heartbeat, monkeypatch):
    """The (scheduler, task name) of each periodic task sent, with one due every second."""
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="every second", task="demoapp.tasks.add", interval=every, last_run_at=LONG_AGO
    )
    sent = []
    monkeypatch.setattr(
        Scheduler, "apply_async", lambda self, entry, **kwargs: sent.append((self, entry.name))
    )
    return sent


@pytest.mark.django_db(transaction=True)
def test_a_second_beat_sends_nothing_until_the_first_stops(sent, scheduler):
    first, second = scheduler(), scheduler()
    for _ in range(3):
        first.tick()
        second.tick()
    assert (first.holding, second.holding) == (True, False)
    assert sent and {scheduler for scheduler, _ in sent} == {first}

    first.close()  # gives the lease back
    PeriodicTask.objects.update(last_run_at=LONG_AGO)  # due again
    second.tick()
    assert second.holding
    assert sent[-1] == (second, "every second")


@pytest.mark.django_db(transaction=True)
def test_a_beat_that_stopped_renewing_loses_the_lease(sent, scheduler):
    first, second = scheduler(), scheduler()
    first.tick()
    second.tick()
    # As if the first beat had been killed, or cut off from the database, long enough ago.
    BeatLease.objects.update(expires=timezone.now() - timedelta(seconds=1))
    second.tick()
    first.tick()
    assert (first.holding, second.holding) == (False, True)
    assert BeatLease.objects.get().holder == second.lease.holder
