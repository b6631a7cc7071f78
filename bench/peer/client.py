"""Drive one task queue from inside its own venv, as support/inproject.py drives ours.

    python -m client APP latency SAMPLES        round trips one at a time (inproject's loop)
    python -m client APP throughput TASKS       TASKS tasks at once, until each can be read
    python -m client APP fill TASKS IDS         empty the store, send TASKS, ids into IDS
    python -m client APP drain FIRST LAST       tasks/s between the FIRST and LAST result
    python -m client APP wait IDS COUNT         until COUNT of the results in IDS are read
    python -m client APP settle IDS SECONDS     how many results in IDS can be read, waiting
                                                until all can or SECONDS passed
    python -m client APP counter TASKS          TASKS read-modify-write tasks on one row

Run in the queue's folder (the generated project's, for celery_app), with bench/peer/ and
this repository on PYTHONPATH (bench/peers.py does). APP is a module of bench/peer/
(*_app.py) with send(x, y) -> an id, read(id) -> the result, None until it can be read,
stored() (how many results are stored), and reset() (empty queue and results); optionally
start() (before sending), recover() (what the peer's docs do after a worker died), and,
where tasks have a transactional database, send_counter(name) and value(name): the
generated project's increment_counter.
Every command sends `add` and prints one JSON document on stdout.
"""

import importlib
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from support.inproject import TIMEOUT, WAIT_POLL, latency

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


def throughput(app, tasks, timeout=TIMEOUT):
    """Send `tasks` tasks, wait until each result can be read; first send to last read."""
    app.reset()
    started = time.perf_counter()
    ids = [app.send(i, i) for i in range(tasks)]
    sent = time.perf_counter() - started
    stored, _ = collect(app, ids, timeout)
    elapsed = time.perf_counter() - started
    return {"tasks": tasks, "stored": stored, "seconds": elapsed, "send_seconds": sent,
            "tasks_per_s": stored / elapsed}  # fmt: skip


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
    elif command in ("throughput", "counter", "fill", "drain", "wait", "settle"):
        out = globals()[command](app, *(a if a.endswith(".json") else json.loads(a) for a in args))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
