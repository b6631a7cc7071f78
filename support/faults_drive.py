"""Send tasks and count their results, from inside a generated project (tests/test_faults.py).

Run with the project's interpreter, from the project's folder, this repository on
PYTHONPATH (Project.faults does):

    python -m support.faults_drive SLUG send KIND COUNT IDS [PAUSE]  # slow long quick later query
    python -m support.faults_drive SLUG drop-connections SECONDS     # PostgreSQL ends others'
    python -m support.faults_drive SLUG victim IDS                   # a 2 s task: its PID
    python -m support.faults_drive SLUG busy NODE COUNT WITHIN       # ids it runs, started lately
    python -m support.faults_drive SLUG finished ID...               # status, time done, worker
    python -m support.faults_drive SLUG wait IDS [AT_LEAST] [--settle] [--timeout=SECONDS]
    python -m support.faults_drive SLUG time-limit
    python -m support.faults_drive SLUG closed-channel           # close after the client went

`send` appends each task id to the file IDS as soon as the broker took it, so a
test can inject a fault part-way. `victim` sends one longer task to the "celery"
queue (the batch is on "long") and prints the PID of the pool process running it,
so a test kills a process that is surely busy. `busy` waits until the worker NODE runs
COUNT tasks, each started less than WITHIN seconds ago, and prints their ids: with one
task reserved per process, a worker whose processes are all busy takes no message from
the broker until one of them finishes. `wait` reads the TaskResult rows of the ids
until AT_LEAST of them (default: all) succeeded, or for at most SECONDS (default 120);
with --settle it also stops once no task is queued or held by a worker, since then no
other one can complete. `closed-channel` receives a message from the Redis broker,
leaves it unacknowledged, drops the connection's client as a worker that lost its
connection does, closes the channel, and says what the close raised.
Each command prints one JSON document on stdout.
"""

import json
import sys
import time
from collections import Counter

from support.drive import setup

TIMEOUT = 120  # seconds any wait may take


def send(kind, count, ids, pause=0.0):
    """Send `count` idempotent tasks: slow ones (~0.3 s) or long ones (~4 s) on the "long"
    queue, quick adds, adds due in 20 s, or quick queries (count_widgets)."""
    from demoapp.tasks import add, count_widgets, long_task

    kinds = {
        "slow": lambda i: long_task.delay(3, 0.1),
        "long": lambda i: long_task.delay(40, 0.1),
        "quick": lambda i: add.delay(i, i),
        "later": lambda i: add.apply_async((i, i), countdown=20),
        "query": lambda i: count_widgets.delay(),
    }

    longest, cpu = 0.0, time.process_time()
    with open(ids, "a") as out:
        for i in range(int(count)):
            started = time.monotonic()
            result = kinds[kind](i)
            longest = max(longest, time.monotonic() - started)
            out.write(f"{result.id}\n")
            out.flush()
            time.sleep(float(pause))
    # The longest single send shows how long a publish waited for the broker; cpu, what
    # sending took of this process's CPU time (seconds).
    cpu = time.process_time() - cpu
    return {"sent": int(count), "longest_send": round(longest, 3), "cpu": round(cpu, 3)}


def victim(ids):
    """Send a 2 s task; once a pool process runs it, return that process's PID."""
    from celery import current_app
    from demoapp.tasks import long_task

    result = long_task.apply_async((20, 0.1), queue="celery")
    with open(ids, "a") as out:
        out.write(f"{result.id}\n")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        active = current_app.control.inspect(timeout=0.5, limit=1).active() or {}
        for task in (task for tasks in active.values() for task in tasks):
            if task["id"] == result.id:
                return {"id": result.id, "pid": task["worker_pid"]}
    raise SystemExit(f"task {result.id} did not start within {TIMEOUT} s")


def busy(node, count, within):
    """The ids of the `count` tasks the worker `node` runs, once each began < `within` s ago."""
    from celery import current_app

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        tasks = (current_app.control.inspect([node], timeout=0.5).active() or {}).get(node, [])
        recent = [task for task in tasks if time.time() - task["time_start"] < float(within)]
        if len(recent) >= int(count):
            return {"ids": [task["id"] for task in recent]}
    raise SystemExit(f"{node} did not run {count} tasks started within {within} s")


def finished(*ids):
    """Each task's status, when its row was last written (epoch seconds) and by which worker."""
    from django_celery_results.models import TaskResult

    rows = TaskResult.objects.filter(task_id__in=ids)
    return {
        task_id: {"status": status, "at": at.timestamp(), "worker": worker}
        for task_id, status, at, worker in rows.values_list(
            "task_id", "status", "date_done", "worker"
        )
    }


def drop_connections(seconds):
    """For `seconds`, have PostgreSQL end every other connection to this database, every
    20 ms: a worker's connection then breaks between two of its queries."""
    from django.db import connection

    deadline, ended = time.monotonic() + float(seconds), 0
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            ended += cursor.fetchone()[0]
            time.sleep(0.02)
    return {"ended": ended}


def states(ids):
    """How many of the tasks are in each state; MISSING: no TaskResult row."""
    from django_celery_results.models import TaskResult

    rows = dict(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "status"))
    return Counter(rows.get(task_id, "MISSING") for task_id in ids)


def unfinished(ids):
    """The ids of the tasks that did not succeed."""
    from django_celery_results.models import TaskResult

    done = TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").values_list("task_id")
    return set(ids) - {task_id for (task_id,) in done}


def idle():
    """True if no task is queued on the broker and no worker holds one."""
    from celery import current_app

    with current_app.connection_for_write() as connection:
        for queue in current_app.conf.task_queues:
            try:
                declared = connection.default_channel.queue_declare(queue.name, passive=True)
            except connection.channel_errors:  # Redis: an empty queue does not exist
                continue
            if declared.message_count:
                return False
    inspect = current_app.control.inspect(timeout=2, limit=1)  # one worker
    replies = [inspect.active(), inspect.reserved()]
    if None in replies:  # no worker answered: nothing is known
        return False
    return not any(tasks for reply in replies for tasks in reply.values())


def wait(ids, *args):
    with open(ids) as file:
        ids = file.read().split()
    settle = "--settle" in args
    numbers = [int(arg) for arg in args if arg.isdigit()]
    at_least = numbers[0] if numbers else len(ids)
    timeouts = [float(arg.split("=")[1]) for arg in args if arg.startswith("--timeout=")]
    deadline = time.monotonic() + (timeouts[0] if timeouts else TIMEOUT)
    settled = False
    while True:
        counts = states(ids)
        if counts["SUCCESS"] >= at_least or time.monotonic() > deadline:
            break
        if settle and idle():
            time.sleep(1)
            if idle():  # twice, a second apart: nothing can change any more
                counts, settled = states(ids), True
                break
        time.sleep(0.2)
    return {
        "sent": len(ids),
        "done": counts["SUCCESS"],
        "unfinished": sorted(unfinished(ids)),
        "states": dict(counts),
        "settled": settled,
        "timed_out": counts["SUCCESS"] < at_least and not settled,
    }


def row(result):
    """Wait for a task's final TaskResult row; return its status and stored result."""
    from django_celery_results.models import TaskResult

    deadline, found = time.monotonic() + TIMEOUT, None
    while time.monotonic() < deadline:
        found = TaskResult.objects.filter(task_id=result.id).first()
        if found and found.status in ("SUCCESS", "FAILURE"):
            return {"status": found.status, "result": json.loads(found.result)}
        time.sleep(0.2)
    return {"status": found.status if found else "MISSING", "result": None}


def time_limit():
    """A long task past a 1 s soft time limit, then a quick one on the same worker."""
    from demoapp.tasks import add, long_task

    slow = row(long_task.apply_async((20, 0.5), soft_time_limit=1))
    return {"long_task": slow, "add": row(add.delay(2, 3))}


def closed_channel():
    """What closing a Redis channel that holds a message raises once its connection's
    client is gone, and whether the message is still among Redis's unacknowledged ones."""
    import redis
    from celery import current_app

    connection = current_app.connection_for_read()
    channel = connection.default_channel
    queue = f"closed-channel-{time.monotonic_ns()}"
    channel.queue_declare(queue)
    channel.basic_publish(channel.prepare_message("{}"), "", queue)
    message = channel.basic_get(queue, no_ack=False)
    assert message is not None, "the message never arrived"
    unacked = channel.qos.unacked_key
    connection.transport.client = None  # what kombu's Connection.collect() does
    try:
        channel.close()
        raised = None
    except Exception as exc:  # what the close raised is the answer
        raised = type(exc).__name__
    client = redis.Redis.from_url(current_app.conf.broker_url)
    kept = client.hexists(unacked, message.delivery_tag)
    client.delete(queue)
    return {"raised": raised, "transport": type(connection.transport).__module__, "kept": kept}


def main():
    slug, command, *args = sys.argv[1:]
    setup(slug)
    commands = {"send": send, "victim": victim, "wait": wait, "time-limit": time_limit,
                "drop-connections": drop_connections, "busy": busy,
                "finished": finished, "closed-channel": closed_channel}  # fmt: skip
    print(json.dumps(commands[command](*args)))


if __name__ == "__main__":
    main()
