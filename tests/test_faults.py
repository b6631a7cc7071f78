"""Faults injected into real workers, brokers and databases: are tasks lost?

Each test sends idempotent tasks, injects one fault, then counts TaskResult rows
that say SUCCESS: "N sent, N done, 0 lost". Figures and reasons: docs/reliability.md.
"""

import itertools
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.project import FAULTS_DRIVE, alive, pool_children, report_fault, task_events

pytestmark = pytest.mark.servers

CONCURRENCY = 2
TASKS = 60  # long_task(3, 0.1): ~0.3 s each
TIMEOUT = 120  # seconds, any wait
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
    broker, PostgreSQL with a server broker (SQLite is for one machine) unless told."""

    projects = []

    def deploy(broker, transport_options=None, database=None):
        database = database or ("sqlite" if broker == "filesystem" else "postgresql")
        # Beat plays no part here: leaving it out saves its migrations.
        project = bake(broker=broker, database=database, use_celery_beat="n")
        project.env["DATABASE_URL"] = database_url(database)
        if broker != "filesystem":
            url = server(broker).url
            if broker == "redis":
                url = f"{url.rsplit('/', 1)[0]}/{next(redis_databases)}"
            project.env["CELERY_BROKER_URL"] = url
        if transport_options:
            project.env["CELERY_BROKER_TRANSPORT_OPTIONS"] = json.dumps(transport_options)
        project.manage("migrate", "--no-input")
        projects.append(project)
        return project, start_worker(project)

    yield deploy
    for worker in (p for project in projects for p in project.processes):
        if worker.popen.poll() not in (None, -signal.SIGKILL):  # it died by itself
            print(f"{worker.name} exited {worker.popen.returncode}:\n{worker.output()[-3000:]}")


def start_worker(project):
    return project.start_worker("worker", "--concurrency", CONCURRENCY)


def worker_log(project):
    return (project.path / "worker.log").read_text(errors="replace")


def deliveries(project, event="received"):
    """How many times each task was received (or succeeded), from the worker's log."""
    return task_events([worker_log(project)], event)


def report(what, broker, outcome, project):
    return report_fault(f"{what} on {broker}", outcome, [worker_log(project)])[0]


@pytest.mark.parametrize("broker", BROKERS)
def test_kill_pool_child(deploy, broker):
    """kill -9 a pool process while it runs a task: late acks requeue the task.
    (Idle pool processes: tests/test_embedded_broker.py.)"""
    project, worker = deploy(broker)
    project.send(TASKS)
    victim = project.faults("victim", project.path / "ids.txt")
    os.kill(victim["pid"], signal.SIGKILL)
    outcome = project.wait_done()
    report("kill -9 a busy pool process", broker, outcome, project)
    assert outcome["done"] == outcome["sent"] == TASKS + 1, outcome
    assert deliveries(project)[victim["id"]] == 2, "the killed task was not delivered again"


@pytest.mark.parametrize("broker", BROKERS)
def test_kill_whole_worker(deploy, broker):
    """kill -9 the worker and its pool processes, start it again: the broker gives back
    what it held (the embedded broker: the dead worker's claimed message files)."""
    project, worker = deploy(broker, FAST_RESTORE.get(broker))
    project.send(TASKS)
    project.wait_done(at_least=10)
    children = pool_children(worker.pid)
    worker.stop(signal.SIGKILL)  # the whole process group, by PID
    assert children and not any(map(alive, children)), "a pool process outlived the kill"
    start_worker(project)
    outcome = project.wait_done()
    lost = report("kill -9 the whole worker, restart", broker, outcome, project)
    if broker == "redis" and lost:
        # kombu pops a message (BRPOP) before it records it as unacknowledged: one the
        # worker died before reading, which no worker received, is lost
        # (docs/reliability.md). One BRPOP at a time, so one task at most.
        received = deliveries(project)
        assert lost == 1 and not received[outcome["unfinished"][0]], outcome
        return
    assert lost == 0, outcome
    assert outcome["done"] == outcome["sent"] == TASKS, outcome


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_broker_restart(deploy, server, broker):
    """Restart the broker three times while a producer sends: sends wait and retry, the
    worker reconnects and stays up, nothing is lost, and no SUCCESS is overwritten. (The
    embedded broker has no server to restart.) Each restart races the worker's reaction to
    the lost connection: taskqueue/redis_broker.py and settings.py's
    CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS say what lost there."""
    project, worker = deploy(broker, FAST_RESTORE.get(broker))
    ids = project.path / "ids.txt"
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(project.send, TASKS, pause=0.1)  # 60 sends over 6 s or more
        deadline = time.monotonic() + TIMEOUT
        for sent in (10, 20, 30):
            while len(ids.read_text().split() if ids.exists() else []) < sent:
                assert not sending.done(), f"the producer ended early: {sending.result()}"
                assert time.monotonic() < deadline, f"the producer sent fewer than {sent} tasks"
                time.sleep(0.1)
            server(broker).restart()
            assert worker.popen.poll() is None, f"the worker died after {sent} sends"
        sent_by_restart_end = len(ids.read_text().split())
        producer = sending.result(timeout=TIMEOUT + 60)
    outcome = project.wait_done()
    report("broker restart while sending", broker, outcome, project)
    print(f"FIGURES longest send {producer['longest_send']} s")
    assert sent_by_restart_end < TASKS, "the producer finished before the broker was back"
    assert outcome["done"] == outcome["sent"] == TASKS, outcome
    assert "Connection to broker lost" in worker.output()


def test_redis_channel_closed_after_its_connection(deploy):
    """A worker that lost its Redis connection drops the connection's client, then closes
    its channels again; a channel holding an unacknowledged message then raises a connection
    error, which Celery ignores, rather than AttributeError, which stopped the worker
    (taskqueue/redis_broker.py). The message stays for Redis to deliver again."""
    project, _ = deploy("redis")
    outcome = project.faults("closed-channel")
    assert outcome == {"raised": "ConnectionError", "transport": "taskqueue.redis_broker",
                       "kept": True}, outcome  # fmt: skip


@pytest.mark.parametrize("database", ["postgresql", "mysql"])
def test_database_restart_while_tasks_run(deploy, server, database):
    """Restart the database while tasks store their progress and results: each write that
    fails is tried again on a new connection (results.py), so every task is done."""
    project, _ = deploy("redis", database=database)
    project.send(TASKS)
    project.wait_done(at_least=10)
    server({"mysql": "mariadb"}.get(database, database)).restart()
    outcome = project.wait_done()
    report(f"{database} restart while tasks run", "redis", outcome, project)
    assert outcome["done"] == outcome["sent"] == TASKS, outcome


def test_database_connections_dropped_while_tasks_query(deploy):
    """PostgreSQL ends the worker's connections again and again while its tasks query it: a
    task that lost its connection runs again on a new one (taskqueue/celery.py), so every
    task is done."""
    project, _ = deploy("redis")
    dropper = project.spawn(
        "drop", *FAULTS_DRIVE, project.slug, "drop-connections", 6, support=True
    )
    project.send(150, "query", pause=0.03)
    dropper.popen.wait(timeout=60)
    outcome = project.wait_done(settle=True)
    report("PostgreSQL ends the connections while tasks query", "redis", outcome, project)
    assert json.loads(dropper.output().splitlines()[-1])["ended"] > 0
    assert outcome["done"] == outcome["sent"], outcome


def test_database_restart(deploy, server):
    """Restart PostgreSQL between two batches: the worker's next tasks succeed."""
    project, _ = deploy("redis")
    project.send(20, "quick", ids="before.txt")
    assert project.wait_done(ids="before.txt")["done"] == 20
    server("postgresql").restart()
    project.send(20, "quick", ids="after.txt")
    outcome = project.wait_done(ids="after.txt")
    report("PostgreSQL restart, then tasks", "redis", outcome, project)
    assert outcome["done"] == outcome["sent"] == 20, outcome


def test_soft_time_limit(deploy):
    """A task past its soft time limit fails with SoftTimeLimitExceeded; the worker goes on."""
    project, _ = deploy("filesystem")
    outcome = project.faults("time-limit")
    assert outcome["long_task"]["status"] == "FAILURE", outcome
    assert outcome["long_task"]["result"]["exc_type"] == "SoftTimeLimitExceeded", outcome
    assert outcome["add"] == {"status": "SUCCESS", "result": 5}
