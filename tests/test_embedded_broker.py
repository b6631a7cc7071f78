"""The embedded broker (the generated `taskqueue/broker.py`) with real workers, and kombu's
own filesystem-transport tests run against it.

Crash and restart figures on every broker: tests/test_faults.py and docs/reliability.md.
"""

import itertools
import json
import os
import re
import signal
import time

import pytest

from support.project import alive, make_venv, pool_children, run, upstream_source

CONCURRENCY = 2
# kombu's tests that check kombu's own implementation rather than a transport's
# behaviour, each with the reason it does not apply.
NOT_OURS = {
    "test_FilesystemLock::test_lock_during_process": (
        "counts kombu's private lock() and unlock() calls around each message file; this "
        "transport writes a message under a temporary name and renames it, which needs no lock"
    ),
}


@pytest.fixture
def embedded(bake):
    """The default project, migrated (beat plays no part here)."""
    project = bake(use_celery_beat="n")
    project.manage("migrate", "--no-input")
    return project


def test_kombus_filesystem_transport_tests_pass(bake, tmp_path):
    """kombu's t/unit/transport/test_filesystem.py, from the sdist of the kombu version the
    project installs, with the project's transport in place of kombu's."""
    project = bake(use_celery_beat="n")
    version = project.run("-c", "import kombu; print(kombu.__version__)").strip()
    source = upstream_source("kombu", version, tmp_path)
    upstream = source / "t" / "unit" / "transport" / "test_filesystem.py"
    text, count = re.subn(
        r"""transport=(['"])filesystem\1""",
        "transport='taskqueue.broker:Transport'",
        upstream.read_text(),
    )
    assert count >= 5, "kombu's test file no longer names its transport as it did"
    ours = upstream.with_name("test_project_transport.py")
    ours.write_text(text)
    python = make_venv(
        tmp_path / "venv",
        project.python,
        ["-r", project.path / "pyproject.toml", "pytest", "hypothesis<7", "pytest-freezer"],
    )
    tests = str(ours.relative_to(source))
    output = run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "python_classes=test_*",
         tests, *(f"--deselect={tests}::{name}" for name in NOT_OURS)],
        cwd=source,
        env={"PYTHONPATH": str(project.path), "PATH": f"{python.parent}:{os.environ['PATH']}"},
    )  # fmt: skip
    passed = int(re.search(r"(\d+) passed", output)[1])
    print(f"FIGURES kombu {version} filesystem-transport tests: {passed} passed, "
          f"deselected: {', '.join(NOT_OURS)}")  # fmt: skip
    assert passed >= 200 and " failed" not in output, output


def test_pool_process_deaths_never_stop_the_worker(embedded):
    """kill -9 each idle pool process in turn, then a busy one: after each kill, 5 tasks
    sent are all done (Celery's event loop gives each pool process its own pipes)."""
    worker = embedded.start_worker("worker", "--concurrency", CONCURRENCY)
    embedded.send(5, "quick", ids="warm-up.txt")
    assert embedded.wait_done(ids="warm-up.txt")["done"] == 5
    for number, pid in enumerate(sorted(pool_children(worker.pid))):
        kill_pool_process(worker, pid)
        embedded.send(5, "quick", ids=f"after-idle-{number}.txt")
        outcome = embedded.wait_done(ids=f"after-idle-{number}.txt")
        assert outcome["done"] == 5, f"after killing idle pool process {pid}: {outcome}"
    busy = embedded.faults("victim", embedded.path / "busy.txt")
    kill_pool_process(worker, busy["pid"])
    embedded.send(5, "quick", ids="after-busy.txt")
    assert embedded.wait_done(ids="after-busy.txt")["done"] == 5
    assert embedded.wait_done(ids="busy.txt")["done"] == 1, "the killed task did not run again"


def kill_pool_process(worker, pid):
    """kill -9 one of the worker's pool processes; wait until the pool has replaced it."""
    before = set(pool_children(worker.pid))
    assert pid in before
    os.kill(pid, signal.SIGKILL)
    assert not alive(pid), f"pool process {pid} survived kill -9"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = set(pool_children(worker.pid))
        if len(now) == len(before) and pid not in now:
            return
        time.sleep(0.1)
    raise AssertionError(f"the pool did not replace process {pid}: {sorted(now)}")


def message_files(project, pattern="*.msg"):
    return sorted(path.name for path in (project.path / ".broker" / "queue").glob(pattern))


def test_warm_shutdown_with_a_backlog_loses_nothing(embedded):
    """SIGTERM with 20,000 tasks waiting: the worker exits, and each task has either run
    or is back in the queue folder, those it had reserved but not started included."""
    sent = embedded.send(20_000, "quick")["sent"]
    worker = embedded.start_worker(
        "worker", "--concurrency", CONCURRENCY, "--prefetch-multiplier", "4"
    )
    embedded.wait_done(at_least=500)
    worker.popen.send_signal(signal.SIGTERM)
    worker.popen.wait(60)  # a hang fails here, with TimeoutExpired
    outcome = embedded.wait_done(at_least=0)
    queue = embedded.path / ".broker" / "queue"
    waiting = {json.loads(path.read_text())["headers"]["id"] for path in queue.glob("*.msg")}
    # Celery closes the broker connection, which puts back what is unacknowledged, before
    # its pool finishes the running tasks: those ran and are waiting too (at least once).
    again = len(waiting) - len(outcome["unfinished"])
    print(f"FIGURES warm shutdown with a backlog: {sent} sent, {outcome['done']} done, "
          f"{len(waiting)} waiting, {again} of them done already")  # fmt: skip
    assert set(outcome["unfinished"]) <= waiting, "tasks neither done nor waiting"
    assert message_files(embedded, "*.claim") == []


def running(worker):
    """The ids of the tasks the worker's log says it received and did not finish."""
    log = worker.output()
    received = set(re.findall(r"Task \S+\[([0-9a-f-]+)\] received", log))
    return received - set(re.findall(r"Task \S+\[([0-9a-f-]+)\] succeeded", log))


def test_a_killed_workers_tasks_go_to_the_other_worker(embedded):
    """Two workers on one queue folder; kill -9 one of them and do not restart it: the
    other puts back what the dead one had claimed, and every task is done."""
    first = embedded.start_worker("first", "--concurrency", CONCURRENCY)
    second = embedded.start_worker("second", "--concurrency", CONCURRENCY)
    embedded.send(40)  # long_task(3, 0.1): about 0.3 s each
    embedded.wait_done(at_least=6)
    deadline = time.monotonic() + 60
    while not running(first):  # killed while it holds a claim, or there is nothing to restore
        assert time.monotonic() < deadline, "the first worker took no task"
        time.sleep(0.02)
    first.stop(signal.SIGKILL)
    outcome = embedded.wait_done()
    assert outcome["done"] == outcome["sent"] == 40, outcome
    assert re.search(r"Restored [1-9]\d* message\(s\) claimed by process", second.output())


def test_gone_event_consumers_leave_nothing_behind(embedded):
    """`celery events` ends (stopped, then killed) while the worker goes on sending events:
    the queue folder does not collect messages for it."""
    embedded.start_worker("worker", "--concurrency", CONCURRENCY, "--task-events")
    for how in (signal.SIGTERM, signal.SIGKILL):
        events = embedded.start(f"events-{how.name}", "events", "--dump")
        events.wait_for("heartbeat")  # the worker sends one every 2 s
        events.stop(how)
    embedded.send(20, "quick")
    assert embedded.wait_done()["done"] == 20
    # Only the worker's own event queue may hold a message, and only for a moment.
    seen = []
    for _ in range(4):
        time.sleep(3)
        seen.append(set(message_files(embedded)))
    assert all(len(files) <= 2 for files in seen), seen
    assert not any(a & b for a, b in itertools.pairwise(seen)), f"messages left unread: {seen}"
    owners = list((embedded.path / ".broker" / "control").glob("celeryev.*.owner"))
    assert owners == [], "the event queues of `celery events` are still there"
