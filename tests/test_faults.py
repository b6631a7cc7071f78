"""Faults injected into real workers, brokers and databases: are tasks lost?

Each test sends idempotent tasks, injects one fault, then counts TaskResult rows
that say SUCCESS: "N sent, N done, 0 lost". Figures and reasons: docs/reliability.md.
"""

import itertools
import json
import os
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers

SCRIPT = Path(__file__).with_name("faults_drive.py")  # runs inside the generated project
CONCURRENCY = 2
# Most tasks a worker holds unacknowledged: concurrency x CELERY_WORKER_PREFETCH_MULTIPLIER (1).
RESERVED = CONCURRENCY * 1
TASKS = 60  # long_task(3, 0.1): ~0.3 s each
TIMEOUT = 120  # seconds, any wait (faults_drive.TIMEOUT)
# Redis hands a dead worker's unacknowledged tasks back only after the visibility
# timeout (600 s in settings.py), in a sweep every interval x throttle seconds
# (kombu's default 10 x 10): make both short here. RabbitMQ and the embedded
# broker need nothing.
FAST_RESTORE = {
    "redis": {
        "visibility_timeout": 10,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
}
BROKERS = ["filesystem", "redis", "rabbitmq"]
redis_databases = itertools.count(1)  # one Redis database per test: no stray messages


@pytest.fixture
def deploy(bake, server, database_url):
    """deploy(broker): a migrated project and its worker; SQLite on the embedded
    broker, PostgreSQL with a server broker (SQLite is for one machine)."""

    projects = []

    def deploy(broker, transport_options=None):
        database = "sqlite" if broker == "filesystem" else "postgresql"
        # Beat plays no part here: leaving it out saves its migrations.
        project = bake(broker=broker, database=database, use_celery_beat="n")
        project.env["DATABASE_URL"] = database_url(database)
        if broker != "filesystem":
            url = server(broker).url
            if broker == "redis":
                url = f"{url.rsplit('/', 1)[0]}/{next(redis_databases)}"
            project.env["CELERY_BROKER_URL"] = url
        if transport_options:
            project.env["BROKER_TRANSPORT_OPTIONS"] = json.dumps(transport_options)
        project.manage("migrate", "--no-input")
        projects.append(project)
        return project, start_worker(project)

    yield deploy
    for worker in (p for project in projects for p in project.processes):
        if worker.popen.poll() not in (None, -signal.SIGKILL):  # it died by itself
            print(f"{worker.name} exited {worker.popen.returncode}:\n{worker.output()[-3000:]}")


def start_worker(project):
    return project.start_worker("worker", "--concurrency", CONCURRENCY)


def drive(project, *args):
    return json.loads(project.run(SCRIPT, project.slug, *map(str, args), timeout=TIMEOUT + 60))


def send(project, count=TASKS, kind="slow", pause=0, ids="ids.txt"):
    return drive(project, "send", kind, count, project.path / ids, pause)


def wait(project, at_least="all", settle=False, ids="ids.txt"):
    """Counts by state of the tasks in `ids`, once `at_least` of them succeeded."""
    outcome = drive(project, "wait", project.path / ids, at_least, *["--settle"] * settle)
    if at_least != "all":
        assert outcome["done"] >= at_least, f"tasks stopped completing: {outcome}"
    return outcome


def pool_children(pid):
    """The PIDs of a worker's pool processes (its children)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def alive(pid, timeout=10):
    """Whether `pid` is still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


def deliveries(project, event="received"):
    """How many times each task was received (or succeeded), from the worker's log."""
    log = (project.path / "worker.log").read_text(errors="replace")
    return Counter(re.findall(rf"Task \S+\[([0-9a-f-]+)\] {event}", log))


def report(what, broker, outcome, project):
    again = sum(n - 1 for n in deliveries(project).values())
    twice = sum(n > 1 for n in deliveries(project, "succeeded").values())
    lost = outcome["sent"] - outcome["done"]
    print(
        f"FIGURES {what} on {broker}: {outcome['sent']} sent, {outcome['done']} done,"
        f" {lost} lost, {again} delivered again, {twice} succeeded twice;"
        f" states {outcome['states']}"
    )
    return lost


@pytest.mark.parametrize("broker", BROKERS)
def test_kill_pool_child(deploy, broker):
    """kill -9 a pool process while it runs a task: late acks requeue the task.

    The process killed is surely busy: on the embedded broker, killing an idle
    one can hang the worker (docs/reliability.md)."""
    project, worker = deploy(broker)
    send(project)
    victim = drive(project, "victim", project.path / "ids.txt")
    os.kill(victim["pid"], signal.SIGKILL)
    outcome = wait(project)
    report("kill -9 a busy pool process", broker, outcome, project)
    assert outcome["done"] == outcome["sent"] == TASKS + 1, outcome
    assert deliveries(project)[victim["id"]] == 2, "the killed task was not delivered again"


@pytest.mark.parametrize("broker", BROKERS)
def test_kill_whole_worker(deploy, broker):
    """kill -9 the worker and its pool processes, start it again: the broker gives back
    what it held, except the embedded one, which kept it in the dead worker's memory."""
    project, worker = deploy(broker, FAST_RESTORE.get(broker))
    send(project)
    wait(project, at_least=10)
    children = pool_children(worker.pid)
    worker.stop(signal.SIGKILL)  # the whole process group, by PID
    assert children and not any(map(alive, children)), "a pool process outlived the kill"
    start_worker(project)
    outcome = wait(project, settle=broker == "filesystem")
    lost = report("kill -9 the whole worker, restart", broker, outcome, project)
    assert not outcome["timed_out"], outcome
    if broker == "filesystem":
        # Lost at most what the worker held: running or reserved, never started again.
        assert lost <= RESERVED, outcome
        assert set(outcome["states"]) <= {"SUCCESS", "STARTED", "PROGRESS", "MISSING"}, outcome
    else:
        assert outcome["done"] == outcome["sent"] == TASKS, outcome


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_broker_restart(deploy, server, broker):
    """Restart the broker while a producer sends: sends wait and retry, the worker
    reconnects, nothing is lost. (The embedded broker has no server to restart.)"""
    project, worker = deploy(broker, FAST_RESTORE.get(broker))
    ids = project.path / "ids.txt"
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(send, project, pause=0.1)  # 60 sends over 6 s or more
        deadline = time.monotonic() + TIMEOUT
        while len(ids.read_text().split() if ids.exists() else []) < 10:
            assert not sending.done(), f"the producer ended early: {sending.result()}"
            assert time.monotonic() < deadline, "the producer sent fewer than 10 tasks"
            time.sleep(0.1)
        server(broker).restart()
        sent_by_restart_end = len(ids.read_text().split())
        producer = sending.result(timeout=TIMEOUT + 60)
    outcome = wait(project)
    report("broker restart while sending", broker, outcome, project)
    print(f"FIGURES longest send {producer['longest_send']} s")
    assert sent_by_restart_end < TASKS, "the producer finished before the broker was back"
    assert outcome["done"] == outcome["sent"] == TASKS, outcome
    assert "Connection to broker lost" in worker.output()


def test_database_restart(deploy, server):
    """Restart PostgreSQL between two batches: the worker's next tasks succeed."""
    project, _ = deploy("redis")
    send(project, 20, "quick", ids="before.txt")
    assert wait(project, ids="before.txt")["done"] == 20
    server("postgresql").restart()
    send(project, 20, "quick", ids="after.txt")
    outcome = wait(project, ids="after.txt")
    report("PostgreSQL restart, then tasks", "redis", outcome, project)
    assert outcome["done"] == outcome["sent"] == 20, outcome


def test_soft_time_limit(deploy):
    """A task past its soft time limit fails with SoftTimeLimitExceeded; the worker goes on."""
    project, _ = deploy("filesystem")
    outcome = drive(project, "time-limit")
    assert outcome["long_task"]["status"] == "FAILURE", outcome
    assert outcome["long_task"]["result"]["exc_type"] == "SoftTimeLimitExceeded", outcome
    assert outcome["add"] == {"status": "SUCCESS", "result": 5}
