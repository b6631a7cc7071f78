"""The default project, end to end: a clean install, real worker and beat processes."""

import os
import re
import signal
import subprocess
from datetime import datetime
from itertools import pairwise

from support.demo import generate, scenario
from support.procfile import wait_until


def test_default_project_end_to_end(tmp_path):
    project = generate(tmp_path)  # its own venv, from its own pyproject.toml
    outcome = scenario(project)

    results = {row["task_name"]: row for row in outcome["demo"]["results"]}
    assert {name: row["status"] for name, row in results.items()} == dict.fromkeys(
        [
            "demoapp.tasks.add",
            "demoapp.tasks.mul",
            "demoapp.tasks.xsum",
            "demoapp.tasks.count_widgets",
            "demoapp.tasks.rename_widget",
        ],
        "SUCCESS",
    )
    assert results["demoapp.tasks.add"]["result"] == 5
    assert results["demoapp.tasks.mul"]["result"] == 20
    assert results["demoapp.tasks.xsum"]["result"] == 10
    assert results["demoapp.tasks.count_widgets"]["result"] == 1
    assert results["demoapp.tasks.rename_widget"]["result"] == "renamed"
    assert outcome["demo"]["widget_name"] == "renamed"
    assert all(row["worker"].startswith("worker@") for row in results.values())

    assert "pong" in outcome["ping"]
    assert outcome["periodic"]["runs"] >= 1
    assert outcome["periodic"]["result"] == "renamed by beat"
    assert outcome["periodic"]["cleanup"]

    # Every process the scenario started is gone.
    assert [p.name for p in project.processes] == ["worker", "beat"]
    for process in project.processes:
        assert process.popen.poll() is not None
    for log in ("worker.log", "beat.log"):
        assert "Traceback" not in (project.path / log).read_text(), log
    assert not os.path.exists(project.path / "beat.pid")


def test_two_workers_share_the_embedded_broker_and_sqlite(bake):
    """2000 read-modify-writes of one SQLite row, taken by two workers from one queue folder:
    none fails on a lock, and each message runs exactly once (the count would show a message
    run twice or lost)."""
    project = bake()  # SQLite and the embedded broker
    project.manage("migrate", "--no-input")
    project.start_worker("short", "--queues", "celery", "--concurrency", "2")
    project.start_worker("both", "--queues", "celery,long", "--concurrency", "1")

    outcome = project.drive("counter", timeout=900)
    assert outcome["locked"] == 0, outcome["failures"]
    assert outcome["succeeded"] == outcome["sent"] == 2000, outcome["failures"]
    assert outcome["value"] == 2000
    assert outcome["workers"] == ["both", "short"]

    outcome = project.drive("spread")
    assert outcome["sent"] == outcome["succeeded"]
    assert set(outcome["workers"]["demoapp.tasks.long_task"]) == {"both"}


def test_beat_starts_over_a_stale_pidfile(bake):
    project = bake()
    project.manage("migrate", "--no-input")
    finished = subprocess.Popen(["true"])
    finished.wait()
    (project.path / "beat.pid").write_text(f"{finished.pid}\n")  # left by a killed beat
    project.start_beat()
    assert "Starting..." in project.processes[-1].output()


SENDING = "Scheduler: Sending due task tick"


def sends(beat):
    """When `beat` sent the periodic task, from its log."""
    stamps = re.findall(rf"^\[([\d-]+ [\d:,]+): INFO/MainProcess\] {SENDING}", beat.output(), re.M)
    return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in stamps]


def test_a_second_beat_stands_by_until_the_first_is_killed(bake):
    """Two `celery beat` processes on one database, a task due every second: the second sends
    nothing while the first runs; once the first is killed (SIGKILL: no lease given back),
    its lease expires and the second sends from then on."""
    project = bake()
    project.env["BEAT_LEASE_SECONDS"] = "3"
    project.manage("migrate", "--no-input")
    project.schedule_every_second("tick")
    first = project.start_beat("first")
    first.wait_for("holds the lease: sending periodic tasks")
    second = project.start_beat("second")
    second.wait_for("holds the lease: standing by")
    standing_by = len(sends(first))
    wait_until(lambda: len(sends(first)) >= standing_by + 3, "three more sends")
    assert sends(second) == []

    first.stop(signal.SIGKILL)
    killed = datetime.now()
    second.wait_for(SENDING)
    took_over = (sends(second)[0] - killed).total_seconds()
    closest = min(b - a for a, b in pairwise(sorted(sends(first) + sends(second))))
    print(f"FIGURES beat lease of 3 s: the first beat sent {len(sends(first))} and the second "
          f"none while both ran; the second sent {took_over:.1f} s after the first was killed; "
          f"the closest two sends were {closest.total_seconds():.2f} s apart")  # fmt: skip
