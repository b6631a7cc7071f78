"""The benchmark's measures of a generated project, taken from inside its own environment
(as support/drive.py drives one for the tests).

Run with the project's interpreter, from the project's folder, this repository on
PYTHONPATH (bench.py does):

    python -m support.inproject SLUG latency SAMPLES   # round trips of one task, one at a time
    python -m support.inproject SLUG throughput TASKS  # TASKS tasks at once, until all stored
    python -m support.inproject SLUG first             # one task, its result read where stored
    python -m support.inproject SLUG fill TASKS        # send TASKS tasks, wait for nothing
    python -m support.inproject SLUG drain FROM TO     # rate of results FROM..TO (django-db)
    python -m support.inproject SLUG claim MESSAGES    # the embedded broker's cost per message

SLUG is the project's package, or `bare` for bench/bare.py (Celery without Django, found
on PYTHONPATH). Every command sends `add` and prints one JSON document on stdout.
"""

import importlib
import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path

from support.drive import setup

TIMEOUT = 300  # seconds for any one wait
# AsyncResult.get() polls a database or cache backend every 0.5 s by default, which would
# be most of a round trip: poll every 5 ms instead (Redis results are pushed, not polled).
POLL = 0.005
WAIT_POLL = 0.02  # how often `throughput` looks whether every result is stored
WARMUP = 5  # round trips before measuring: connections, imports, first queries
# Latency samples are sent after a random pause of up to this many seconds, so they arrive
# at random moments of a polling broker's cycle, as a user's tasks would; sent back to back
# they would each wait a whole polling interval.
GAP = 0.1


def load(slug):
    """The `add` task: demoapp's in a Django project (after django.setup()), else bare's."""
    if Path("manage.py").exists():
        setup(slug)
        from demoapp.tasks import add

        return add
    return importlib.import_module(slug).add


def stores_rows(task):
    """True when results are TaskResult rows (django-db, or a backend built on it)."""
    library = "django_celery_results.backends.database"
    return any(cls.__module__ == library for cls in type(task.backend).__mro__)


def percentile(samples, p):
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def latency(add, samples):
    for _ in range(WARMUP):
        add.delay(1, 1).get(timeout=TIMEOUT, interval=POLL)
    pauses = random.Random(0)
    seconds = []
    for i in range(samples):
        time.sleep(pauses.uniform(0, GAP))
        started = time.perf_counter()
        assert add.delay(i, i).get(timeout=TIMEOUT, interval=POLL) == 2 * i
        seconds.append(time.perf_counter() - started)
    return {
        "samples": samples,
        "p50_ms": percentile(seconds, 50) * 1000,
        "p95_ms": percentile(seconds, 95) * 1000,
    }


def throughput(add, tasks, timeout=TIMEOUT):
    """Send `tasks` tasks, wait until every result is stored; time from first send to last."""
    counted = stores_rows(add)
    if counted:  # start from an empty table, as the cache below
        from django_celery_results.models import TaskResult

        TaskResult.objects.all().delete()
    elif hasattr(add.backend, "cache_backend"):  # django-cache counts its rows at every write
        add.backend.cache_backend.clear()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    results = [add.delay(i, i) for i in range(tasks)]
    sent = time.perf_counter() - started
    stored = 0
    deadline = started + timeout
    if counted:  # count the rows: polling 2000 results one by one would load the database
        while stored < tasks and time.perf_counter() < deadline:
            time.sleep(WAIT_POLL)
            stored = TaskResult.objects.filter(status="SUCCESS").count()
    else:  # Redis pushes results; the cache backend is asked for each in turn
        from celery.backends.asynchronous import AsyncBackendMixin
        from celery.exceptions import TimeoutError as ResultTimeout
        from celery.result import ResultSet

        try:
            if isinstance(add.backend, AsyncBackendMixin):
                ResultSet(results).join_native(timeout=timeout)
            else:
                for result in results:
                    result.get(timeout=max(deadline - time.perf_counter(), 0.1), interval=WAIT_POLL)
            stored = tasks
        except ResultTimeout:
            stored = sum(r.ready() for r in results)
    elapsed = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    return {
        "tasks": tasks,
        "stored": stored,
        "seconds": elapsed,
        "send_seconds": sent,
        "tasks_per_s": stored / elapsed,
        "client_cpu_s": client_cpu,
    }


def first(add):
    """One task, its result read back where the backend stores it."""
    result = add.delay(2, 3)
    assert result.get(timeout=TIMEOUT, interval=POLL) == 5
    if stores_rows(add):
        from django_celery_results.models import TaskResult

        row = TaskResult.objects.get(task_id=result.id)
        assert (row.status, json.loads(row.result)) == ("SUCCESS", 5), row
    return {"task_id": result.id, "result": 5}


def fill(add, tasks):
    """Send `tasks` tasks for a worker started later; the result table starts empty."""
    from django_celery_results.models import TaskResult

    TaskResult.objects.all().delete()
    started = time.perf_counter()
    for i in range(tasks):
        add.delay(i, i)
    return {"sent": tasks, "send_seconds": time.perf_counter() - started}


def drain(add, first, last):
    """Tasks per second between the `first` and the `last` stored result."""
    from django_celery_results.models import TaskResult

    print("reading", file=sys.stderr, flush=True)  # bench.py starts the worker now
    marks = {}
    deadline = time.perf_counter() + TIMEOUT
    while len(marks) < 2 and time.perf_counter() < deadline:
        stored = TaskResult.objects.filter(status="SUCCESS").count()
        for mark in (first, last):
            if stored >= mark and mark not in marks:
                marks[mark] = time.perf_counter()
        time.sleep(WAIT_POLL)
    if len(marks) < 2:
        raise SystemExit(f"only {stored} results stored within {TIMEOUT} s")
    return {"tasks_per_s": (last - first) / (marks[last] - marks[first])}


def claim(add, messages):
    """With the queue as it is (no worker running): the time one process takes to list the
    queue folder, then to claim, read and acknowledge each of `messages` messages."""
    from celery import current_app

    with current_app.connection_for_read() as connection:
        channel = connection.default_channel
        started = time.perf_counter()
        waiting = connection.transport.watch(Path(channel.data_folder_in)).waiting_for("celery")
        listed = len(waiting)
        listing = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(messages):
            channel.basic_ack(channel.basic_get("celery").delivery_tag)
        per_message = (time.perf_counter() - started) / messages if messages else None
    return {
        "waiting": listed,
        "listing_ms": listing * 1000,
        "claim_us": per_message and per_message * 1e6,
    }


def main():
    slug, command, *args = sys.argv[1:]
    add = load(slug)
    if command == "first":
        out = first(add)
    elif command == "latency":
        out = latency(add, int(args[0]))
    elif command == "throughput":
        out = throughput(add, int(args[0]), *map(float, args[1:]))
    elif command in ("fill", "drain", "claim"):
        out = globals()[command](add, *map(int, args))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
