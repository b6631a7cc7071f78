"""Drive a generated project from inside its own environment.

Run with the project's interpreter, from the project's folder, this repository on
PYTHONPATH (Project.drive does):

    python -m support.drive SLUG demo       # send the demo tasks, print their stored results
    python -m support.drive SLUG periodic   # schedule a periodic task, wait until beat ran it
    python -m support.drive SLUG spread     # short and long tasks: which worker ran each
    python -m support.drive SLUG counter    # 2000 tasks incrementing one row
    python -m support.drive SLUG cleanup    # beat's cleanup beside `add` tasks, one at a time
    python -m support.drive SLUG django-tasks  # count_words through Django's task API
    python -m support.drive SLUG hold       # store rows of each kind a project keeps
    python -m support.drive SLUG held       # read them back
    python -m support.drive SLUG gone-migrations  # applied, but no longer on disk

Each command prints one JSON document on stdout. It only uses what the
generated project installs, so it also proves the project's dependencies.
"""

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

DEMO_TIMEOUT = 60


def setup(slug):
    """Django, with the project's settings (its package is importable: -m put the working
    directory, the project's folder, first on sys.path)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{slug}.settings")
    import django

    django.setup()


def in_database():
    """Whether results are TaskResult rows (django-db: the project's backend is built on it)."""
    from celery import current_app
    from django_celery_results.backends import DatabaseBackend

    return isinstance(current_app.backend, DatabaseBackend)


def stored(results):
    """The results as the result backend stored them (TaskResult rows for django-db)."""
    if not in_database():
        return [
            {"task_id": r.id, "task_name": r.name, "status": r.state, "result": r.result}
            for r in results
        ]
    from django_celery_results.models import TaskResult

    rows = {
        row.task_id: row for row in TaskResult.objects.filter(task_id__in=[r.id for r in results])
    }
    return [
        {
            "task_id": r.id,
            "task_name": rows[r.id].task_name,
            "status": rows[r.id].status,
            "result": json.loads(rows[r.id].result),
            "date_done": rows[r.id].date_done.isoformat(),
            "worker": rows[r.id].worker,
        }
        for r in results
    ]


def demo():
    from demoapp.models import Widget
    from demoapp.tasks import add, count_widgets, mul, rename_widget, xsum

    widget = Widget.objects.create(name=f"widget {uuid.uuid4().hex[:8]}")
    results = [
        add.delay(2, 3),
        mul.delay(4, 5),
        xsum.delay([1, 2, 3, 4]),
        count_widgets.delay(),
        rename_widget.delay(widget.pk, "renamed"),
    ]
    started = time.monotonic()
    for result in results:
        result.get(timeout=DEMO_TIMEOUT, interval=0.05)
    elapsed = time.monotonic() - started
    widget.refresh_from_db()
    return {"results": stored(results), "widget_name": widget.name, "seconds": round(elapsed, 3)}


def periodic():
    """Schedule a rename every second through the ORM; wait until beat sent it and it ran."""
    from demoapp.models import Widget
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from django_celery_results.models import TaskResult

    widget = Widget.objects.create(name="before")
    name = f"rename every second {uuid.uuid4().hex[:8]}"
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name=name,
        task="demoapp.tasks.rename_widget",
        interval=every,
        args=json.dumps([widget.pk, "renamed by beat"]),
    )
    # The cache backend keeps no list of results: there, the renamed widget must do.
    results_in_db = in_database()
    deadline = time.monotonic() + DEMO_TIMEOUT
    while time.monotonic() < deadline:
        widget.refresh_from_db()
        runs = TaskResult.objects.filter(periodic_task_name=name, status="SUCCESS")
        if widget.name != "before" and (runs.exists() or not results_in_db):
            PeriodicTask.objects.filter(name=name).update(enabled=False)
            # Beat schedules the deletion of expired results (CELERY_RESULT_EXPIRES) itself.
            cleanup = PeriodicTask.objects.filter(task="celery.backend_cleanup").exists()
            return {"name": name, "runs": runs.count(), "result": widget.name, "cleanup": cleanup}
        time.sleep(0.2)
    raise SystemExit(f"periodic task {name!r} did not run within {DEMO_TIMEOUT} s")


def spread():
    """Short tasks and long ones at once: which worker ran each, and did every one succeed?"""
    from demoapp.tasks import add, long_task
    from django_celery_results.models import TaskResult

    results = [add.delay(i, i) for i in range(40)] + [long_task.delay(3, 0.1) for _ in range(4)]
    for result in results:
        result.get(timeout=DEMO_TIMEOUT, interval=0.05)
    rows = TaskResult.objects.filter(task_id__in=[r.id for r in results])
    workers = {}
    for row in rows:
        workers.setdefault(row.task_name, []).append(row.worker.partition("@")[0])
    succeeded = sum(row.status == "SUCCESS" for row in rows)
    return {"sent": len(results), "succeeded": succeeded, "workers": workers}


def counter():
    """2000 read-modify-write tasks on one row: how many failed, the final count, and which
    workers ran them."""
    from demoapp.models import Counter
    from demoapp.tasks import increment_counter
    from django_celery_results.models import TaskResult

    name = f"counter {uuid.uuid4().hex[:8]}"
    ids = [increment_counter.delay(name).id for _ in range(2000)]
    deadline = time.monotonic() + 10 * DEMO_TIMEOUT
    while time.monotonic() < deadline:
        rows = TaskResult.objects.filter(task_id__in=ids, status__in=["SUCCESS", "FAILURE"])
        if rows.count() == len(ids):
            break
        time.sleep(0.5)
    failures = list(rows.filter(status="FAILURE").values_list("result", flat=True))
    return {
        "sent": len(ids),
        "succeeded": rows.filter(status="SUCCESS").count(),
        "locked": sum("database is locked" in failure for failure in failures),
        "failures": failures[:5],
        "value": Counter.objects.get(name=name).value,
        "workers": sorted({row.worker.partition("@")[0] for row in rows.only("worker")}),
    }


def cleanup():
    """Beat's cleanup of expired results sent to the worker, and `add` tasks sent one at a
    time until it is done: how many ran meanwhile, how many failed, and after how many of
    them part of the expired rows was gone (a reader sees a DELETE only once it commits)."""
    from celery import current_app
    from demoapp.tasks import add
    from django.utils import timezone
    from django_celery_results.models import TaskResult

    cutoff = timezone.now() - current_app.conf.result_expires
    expired = TaskResult.objects.filter(date_done__lt=cutoff)
    before = expired.count()
    started = time.monotonic()
    job = current_app.send_task("celery.backend_cleanup")
    round_trips, failures, partly_deleted, gone = [], [], 0, False
    while not job.ready():
        sent = time.monotonic()
        try:
            add.delay(2, 3).get(timeout=DEMO_TIMEOUT, interval=0.01)
        except Exception as error:  # a task that failed: counted, and the run goes on
            failures.append(repr(error))
        round_trips.append(time.monotonic() - sent)
        # Counted until a row is gone, then only whether any is left: nothing adds expired
        # rows, and a count of up to 2,000,000 rows a task would slow the cleanup itself.
        gone = gone or expired.count() < before
        partly_deleted += gone and expired.exists()
    return {
        "expired": before,
        "left": expired.count(),
        "cleanup": job.status,
        "seconds": time.monotonic() - started,
        "during": len(round_trips),
        "partly_deleted": partly_deleted,
        "failed": len(failures),
        "failures": failures[:5],
        "p50_s": statistics.median(round_trips),
        "p99_s": statistics.quantiles(round_trips, n=100)[98],
        "slowest_s": max(round_trips),
    }


def django_tasks():
    """demoapp's count_words, written with django.tasks: started from the dashboard's view,
    failing, deferred, and (where the broker orders by it) by priority behind a busy worker."""
    from datetime import timedelta

    from demoapp.tasks import count_words, long_task
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    def finished(result):
        deadline = time.monotonic() + DEMO_TIMEOUT
        while not result.is_finished and time.monotonic() < deadline:
            time.sleep(0.1)
            result.refresh()
        return result

    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.create(username=f"staff-{uuid.uuid4()}", is_staff=True))
    form = {"task": "count_words", "text": "one two three"}
    answer = client.post(reverse("demoapp:start_task"), form)
    from_view = finished(count_words.get_result(answer.json()["id"]))
    failed = finished(count_words.enqueue(42))
    run_after = timezone.now() + timedelta(seconds=2)
    deferred = finished(count_words.using(run_after=run_after).enqueue("later"))
    errors = failed.errors
    outcome = {
        "from_view": {"status": from_view.status, "value": from_view.return_value,
                      "workers": from_view.worker_ids},
        "failed": {"status": failed.status, "errors": [e.exception_class_path for e in errors],
                   "traceback": errors[0].traceback if errors else ""},
        "deferred": {"status": deferred.status, "waited": deferred.started_at >= run_after},
        "supports_priority": count_words.get_backend().supports_priority,
    }  # fmt: skip
    if outcome["supports_priority"]:
        busy = long_task.delay(2, 1.0)  # the only pool process is busy: the rest wait
        time.sleep(0.5)
        low = [count_words.using(priority=-50).enqueue(f"low {n}") for n in range(3)]
        high = count_words.using(priority=0).enqueue("high")
        busy.get(timeout=DEMO_TIMEOUT)
        order = sorted([*low, high], key=lambda result: finished(result).finished_at)
        outcome["order"] = [result.args[0] for result in order]
    return outcome


def hold():
    """Rows of each kind a project's database keeps: the demo's widgets and counters,
    stored results, a periodic task with its schedule, and a staff user allowed to run
    periodic tasks (a permission the template's own data migration creates)."""
    from demoapp.models import Counter, Widget
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from django_celery_results.models import TaskResult

    Widget.objects.bulk_create(Widget(name=f"widget {n}") for n in range(3))
    Counter.objects.bulk_create([Counter(name="visits", value=41), Counter(name="orders", value=7)])
    for n in range(3):
        TaskResult.objects.create(
            task_id=str(uuid.uuid4()),
            task_name="demoapp.tasks.add",
            status="SUCCESS",
            result=json.dumps(n + n),
            content_type="application/json",
            content_encoding="utf-8",
        )
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="count widgets", task="demoapp.tasks.count_widgets", interval=every
    )
    user = get_user_model().objects.create_user("operator", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="django_celery_beat", codename="run_periodictask"
        )
    )
    return held()


def held():
    """The rows hold() stores, as the database has them now."""
    from demoapp.models import Counter, Widget
    from django.contrib.auth import get_user_model
    from django_celery_beat.models import PeriodicTask
    from django_celery_results.models import TaskResult

    staff = get_user_model().objects.filter(is_staff=True).order_by("pk")
    return {
        "widgets": list(Widget.objects.order_by("pk").values_list("pk", "name")),
        "counters": list(Counter.objects.order_by("pk").values_list("name", "value")),
        "task results": list(
            TaskResult.objects.order_by("pk").values_list("task_id", "status", "result")
        ),
        "periodic tasks": list(
            PeriodicTask.objects.order_by("pk").values_list(
                "name", "task", "enabled", "interval__every", "interval__period"
            )
        ),
        "staff who may run periodic tasks": [
            user.get_username()
            for user in staff
            if user.has_perm("django_celery_beat.run_periodictask")
        ],
    }


def gone_migrations():
    """The migrations the database records as applied that no migration on disk is or
    replaces, in the apps of this project's own folder or apps no longer installed: what
    the project's migrations no longer describe."""
    from django.apps import apps
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.recorder import MigrationRecorder

    loader = MigrationLoader(connection)
    on_disk = set(loader.disk_migrations)
    on_disk |= {key for migration in loader.disk_migrations.values() for key in migration.replaces}
    elsewhere = {
        app.label for app in apps.get_app_configs() if Path.cwd() not in Path(app.path).parents
    }
    applied = sorted(MigrationRecorder(connection).applied_migrations())
    gone = [key for key in applied if key[0] not in elsewhere and key not in on_disk]
    return [".".join(key) for key in gone]


def main():
    slug, command = sys.argv[1:3]
    setup(slug)
    commands = {"demo": demo, "periodic": periodic, "spread": spread, "counter": counter,
                "cleanup": cleanup, "django-tasks": django_tasks, "hold": hold, "held": held,
                "gone-migrations": gone_migrations}  # fmt: skip
    print(json.dumps(commands[command]()))


if __name__ == "__main__":
    main()
