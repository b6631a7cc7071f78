"""Drive one task queue from inside its own venv, as support/inproject.py drives ours.

    python -m client APP latency SAMPLES        round trips one at a time (inproject's loop)
    python -m client APP throughput TASKS       TASKS tasks at once, until each can be read
    python -m client APP naps TASKS             the same with the 50 ms asleep task, nap
    python -m client APP inflight AT_ONCE SAMPLES  round trips of AT_ONCE tasks sent together
    python -m client APP fill TASKS IDS         empty the store, send TASKS, ids into IDS
    python -m client APP drain FIRST LAST       tasks/s between the FIRST and LAST result
    python -m client APP wait IDS COUNT         until COUNT of the results in IDS are read
    python -m client APP settle IDS SECONDS     how many results in IDS can be read, waiting
                                                until all can or SECONDS passed
    python -m client APP counter TASKS          TASKS read-modify-write tasks on one row

Run in the queue's folder (the generated project's, for celery_app), with bench/peer/ and
this repository on PYTHONPATH (bench/peers.py does). APP is a module of bench/peer/
(*_app.py) with send(x, y) -> an id, read(id) -> the result, None until it can be read,
stored() (how many results are stored), reset() (empty queue and results), and
send_nap() -> an id: a task asleep for 50 ms that returns True (an I/O-bound task); optionally
start() (before sending), recover() (what the peer's docs do after a worker died), and,
where tasks have a transactional database, send_counter(name) and value(name): the
generated project's increment_counter.
Every command but naps and counter sends `add`; each prints one JSON document on stdout.
"""

import importlib
import json
import resource
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from support.inproject import POLL, TIMEOUT, WAIT_POLL, latency, percentile

RECOVER_EVERY = 5  # seconds between recover() calls while settling


@dataclass
class Handle:
    """What inproject.latency() expects of add.delay(): get(timeout, interval)."""

    app: object
    id: object
    expected: int

    def get(self, timeout, interval):
        deadline = time.perf_counter() + timeout
        while (value := self.app.read(self.id)) is None:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no result for {self.id} within {timeout} s")
            time.sleep(interval)
        # A peer without a result store (procrastinate) can only say the task succeeded.
        return value if getattr(self.app, "STORES_RESULTS", True) else self.expected


@dataclass
class Task:
    app: object

    def delay(self, x, y):
        return Handle(self.app, self.app.send(x, y), x + y)


def collect(app, ids, seconds=TIMEOUT, until=None, ordered=True, marks=(), recover=False):
    """Read the results of `ids` until `until` of them (all by default) could be read or
    `seconds` passed. Ordered: each pass stops at the first one not readable yet (a FIFO
    queue's next), else each pass reads every one left. Returns the count and the time at
    which it reached each of `marks`."""
    until = len(ids) if until is None else until
    pending, done, reached = list(ids), 0, {}
    deadline, recovered = time.perf_counter() + seconds, time.perf_counter()
    while done < until and time.perf_counter() < deadline:
        left = []
        for n, task_id in enumerate(pending):
            if app.read(task_id) is None:
                if ordered:
                    left = pending[n:]
                    break
                left.append(task_id)
            else:
                done += 1
                if done in marks:
                    reached[done] = time.perf_counter()
        pending = left
        if recover and time.perf_counter() - recovered > RECOVER_EVERY:
            app.recover()
            recovered = time.perf_counter()
        time.sleep(WAIT_POLL)
    return done, reached


def own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def throughput(app, tasks, timeout=TIMEOUT, send=None):
    """Send `tasks` tasks (send(i) each; add(i, i) by default), wait until each result can
    be read; first send to last read, and this process's CPU seconds meanwhile."""
    send = send or (lambda i: app.send(i, i))
    app.reset()
    cpu, started = own_cpu(), time.perf_counter()
    ids = [send(i) for i in range(tasks)]
    sent = time.perf_counter() - started
    stored, _ = collect(app, ids, timeout)
    elapsed = time.perf_counter() - started
    return {"tasks": tasks, "stored": stored, "seconds": elapsed, "send_seconds": sent,
            "tasks_per_s": stored / elapsed, "client_cpu_s": own_cpu() - cpu}  # fmt: skip


def naps(app, tasks):
    return throughput(app, tasks, send=lambda _: app.send_nap())


def inflight(app, at_once, samples):
    """Round trips with `at_once` tasks in flight: rounds of that many sent together (at
    least two rounds, about `samples` round trips), each from its send until its result
    can be read; each pass reads every result not read yet."""
    app.reset()
    seconds, deadline = [], time.perf_counter() + TIMEOUT
    for _ in range(max(2, samples // at_once)):
        sent = {}
        for i in range(at_once):
            started = time.perf_counter()
            sent[app.send(i, i)] = started
        while sent:
            if time.perf_counter() > deadline:
                raise SystemExit(f"{len(sent)} results not read within {TIMEOUT} s")
            for task_id in list(sent):
                if app.read(task_id) is not None:
                    seconds.append(time.perf_counter() - sent.pop(task_id))
            time.sleep(POLL)
    return {"in_flight": at_once, "samples": len(seconds),
            "p50_ms": percentile(seconds, 50) * 1000,
            "p95_ms": percentile(seconds, 95) * 1000}  # fmt: skip


def counter(app, tasks, timeout=TIMEOUT):
    """`tasks` increments of one counter at once; tasks/s until each result can be read,
    and the counter's value then (`tasks` unless an update was lost)."""
    name = f"counter {uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    done, _ = collect(app, [app.send_counter(name) for _ in range(tasks)], timeout)
    rate = done / (time.perf_counter() - started)
    return {"tasks": tasks, "done": done, "tasks_per_s": rate, "value": app.value(name)}


def fill(app, tasks, ids_file):
    app.reset()
    started = time.perf_counter()
    ids = [app.send(i, i) for i in range(tasks)]
    Path(ids_file).write_text(json.dumps(ids))
    return {"sent": tasks, "send_seconds": time.perf_counter() - started}


def drain(app, first, last):
    """Tasks/s between the FIRST and the LAST result stored, counted as inproject.py's
    drain counts TaskResult rows: in whatever order the worker takes the tasks."""
    print("reading", file=sys.stderr, flush=True)  # bench/peers.py starts the worker now
    marks, deadline = {}, time.perf_counter() + TIMEOUT
    while len(marks) < 2 and time.perf_counter() < deadline:
        stored = app.stored()
        for mark in (first, last):
            if stored >= mark:
                marks.setdefault(mark, time.perf_counter())
        time.sleep(WAIT_POLL)
    if len(marks) < 2:
        raise SystemExit(f"only {stored} results stored within {TIMEOUT} s")
    return {"tasks_per_s": (last - first) / (marks[last] - marks[first])}


def wait(app, ids_file, count):
    done, _ = collect(app, json.loads(Path(ids_file).read_text()), until=count)
    return {"done": done}


def settle(app, ids_file, seconds):
    ids = json.loads(Path(ids_file).read_text())
    done, _ = collect(app, ids, seconds, ordered=False, recover=hasattr(app, "recover"))
    return {"sent": len(ids), "done": done}


def main():
    name, command, *args = sys.argv[1:]
    app = importlib.import_module(name)
    if hasattr(app, "start"):
        app.start()
    if command == "latency":
        out = latency(Task(app), int(args[0]))
    elif command in (
        "throughput",
        "naps",
        "inflight",
        "counter",
        "fill",
        "drain",
        "wait",
        "settle",
    ):
        out = globals()[command](app, *(a if a.endswith(".json") else json.loads(a) for a in args))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
