"""The celery command line as people type it, against real workers, on each broker.

The last test runs a generated project's own tests beside a development worker: they use
kombu's in-memory broker and a test database, so the worker and db.sqlite3 see nothing.
"""

import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest

from support import servers

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

COMBINATIONS = [
    pytest.param({}, id="filesystem-sqlite-django_db"),
    pytest.param(
        {"broker": "redis", "database": "postgresql"},
        id="redis-postgresql-django_db",
        marks=pytest.mark.servers,
    ),
    pytest.param(
        {"broker": "rabbitmq", "database": "sqlite", "result_backend": "django-cache"},
        id="rabbitmq-sqlite-django_cache",
        marks=pytest.mark.servers,
    ),
]


@pytest.fixture(scope="module")
def own_rabbitmq(tmp_path_factory):
    """A RabbitMQ of this module's own: after these commands (shutdown, purge, multi, and
    more) the session's RabbitMQ stopped answering the tests that came after them."""
    server = servers.rabbitmq(tmp_path_factory.mktemp("cli-rabbitmq"))
    yield server
    server.stop()


@pytest.fixture(params=COMBINATIONS)
def project(request, bake, database_url):
    """A migrated project on the broker and database its answers name."""
    answers = request.param
    project = bake(**answers)
    if answers.get("broker") == "rabbitmq":
        project.env["CELERY_BROKER_URL"] = request.getfixturevalue("own_rabbitmq").url
    elif "broker" in answers:
        project.env["CELERY_BROKER_URL"] = request.getfixturevalue("server")(answers["broker"]).url
    project.env["DATABASE_URL"] = database_url(answers.get("database", "sqlite"))
    project.manage("migrate", "--no-input")
    if answers.get("result_backend") == "django-cache":
        project.manage("createcachetable")
    return project


def typed(project, *args, stdin=None):
    """`celery -A <slug> ARGS`, as typed in a shell: its exit code and all it printed."""
    done = subprocess.run(
        [project.python.parent / "celery", "-A", project.slug, *args],
        cwd=project.path,
        env=project.environ(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def ok(project, *args, **kwargs):
    code, printed = typed(project, *args, **kwargs)
    assert code == 0, printed
    return printed


def transport(project):
    return project.env.get("CELERY_BROKER_URL", "filesystem://").partition("://")[0]


def call_add(project):
    """`celery call` prints the id of the task it sent, and nothing else."""
    task_id = ok(project, "call", "demoapp.tasks.add", "--args", "[2, 3]").strip()
    assert UUID.fullmatch(task_id), task_id
    return task_id


@pytest.mark.parametrize(
    ("pool", "shown"), [("prefork", "prefork"), ("solo", "solo"), ("threads", "thread")]
)
def test_worker_runs_what_call_sends_and_result_reads_it(project, pool, shown):
    worker = project.start_worker("worker", f"--pool={pool}")
    assert re.search(rf"concurrency: \d+ \({shown}\)", worker.output())

    task_id = call_add(project)
    assert ok(project, "result", task_id) == "5\n"
    worker.wait_for(f"Task demoapp.tasks.add[{task_id}] succeeded")


def test_beat_sends_a_periodic_task_from_the_database(project):
    project.schedule_every_second("add every second")
    worker = project.start_worker()
    beat = project.start_beat()
    # The settings name the database scheduler that records its ticks for checkbeat.
    assert ". scheduler -> taskqueue.beat.Scheduler" in beat.output()
    beat.wait_for("Scheduler: Sending due task add every second (demoapp.tasks.add)")
    worker.wait_for("succeeded in")
    assert re.search(r"Task demoapp.tasks.add\[.+\] succeeded in .+: 5$", worker.output(), re.M)


def test_inspect_status_events_shell_and_control(project):
    worker = project.start_worker()
    for command, shown in [
        ("ping", "pong"),
        ("active", "- empty -"),
        ("registered", "* demoapp.tasks.add"),
        ("scheduled", "- empty -"),
        ("stats", '"max-concurrency"'),
    ]:
        printed = ok(project, "inspect", command)
        assert "->  worker@" in printed and shown in printed, printed
        assert "1 node online." in printed
    assert "1 node online." in ok(project, "status")

    assert "task events enabled" in ok(project, "control", "enable_events")
    events = project.start("events", "events", "--dump")
    events.wait_for("-> evdump: starting capture...")
    task_id = call_add(project)
    events.wait_for(f"task succeeded: demoapp.tasks.add({task_id})")
    events.stop()

    stdin = "print('sum:', add.delay(2, 3).get(timeout=30))\n"
    assert "sum: 5" in ok(project, "shell", "--python", stdin=stdin)

    # The worker does not answer a shutdown, so celery reports that no node replied.
    typed(project, "control", "shutdown")
    assert worker.popen.wait(60) == 0
    assert "Got shutdown from remote" in worker.output()


def test_purge_and_report(project):
    call_add(project)
    call_add(project)  # no worker runs: both wait in the queue
    assert "Purged 2 messages from 2 known task queues." in ok(project, "purge", "-f")
    assert "No messages purged from 2 queues." in ok(project, "purge", "-f")

    settings = (project.path / project.slug / "settings.py").read_text()
    results = re.search(r'^CELERY_RESULT_BACKEND = "(.+)"', settings, re.MULTILINE)[1]
    assert f"transport:{transport(project)} results:{results}" in ok(project, "report")


def test_list_bindings(project, request):
    if transport(project) == "amqp":
        # kombu asks RabbitMQ's management plugin, through pyrabbit: the project has neither.
        request.applymarker(pytest.mark.xfail(reason="No module named 'pyrabbit'", strict=True))
    printed = ok(project, "list", "bindings")
    assert re.search(r"^celery +celery +celery$", printed, re.MULTILINE), printed
    assert re.search(r"^long +celery +celery$", printed, re.MULTILINE), printed


def test_multi_start_and_stopwait(project):
    folder = project.path / "multi"
    options = ["w1", f"--pidfile={folder}/%n.pid", f"--logfile={folder}/%n%I.log", "-l", "info"]
    pidfile, log = folder / "w1.pid", folder / "w1.log"
    try:
        assert "> w1@" in ok(project, "multi", "start", *options)
        deadline = time.monotonic() + 60
        while not (log.exists() and "ready." in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "->  w1@" in ok(project, "inspect", "ping")
        pid = int(pidfile.read_text())

        printed = ok(project, "multi", "stopwait", *options)
        assert f"TERM -> {pid}" in printed and "DOWN" in printed
        assert not pidfile.exists()
    finally:
        if pidfile.exists():  # multi daemonized it: stop it by its PID
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def row_counts(database):
    with sqlite3.connect(database) as db:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name.startswith(("demoapp_", "django_celery_results_"))
        ]
        return {
            table: db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables
        }


def test_project_tests_leave_a_running_development_worker_alone(bake):
    project = bake()
    project.manage("migrate", "--no-input")
    worker = project.start_worker()
    before = row_counts(project.path / "db.sqlite3")
    assert "demoapp_widget" in before and "django_celery_results_taskresult" in before

    project.run("-m", "pytest", "-q", "-p", "no:cacheprovider", timeout=900)

    assert "] received" not in worker.output()
    assert row_counts(project.path / "db.sqlite3") == before
    assert not list((project.path / ".broker" / "queue").glob("*.msg"))
