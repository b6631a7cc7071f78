"""The default project run the way its deployment files say, and its health checks.

The site as `Procfile` runs it (release step, then gunicorn with DEBUG off) serves its
pages and its static files; /health/, the worker's ping (as the systemd health unit runs
it) and beat's check (as compose runs it) each answer healthy, then unhealthy once the
database, the worker or beat is gone or hung.
"""

import json
import re
import shlex
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from support import servers
from support.procfile import (
    DEADLINE,
    answers,
    get,
    procfile,
    serve_as_procfile,
    spawn,
    wait_until,
)
from support.project import unit_command

YEAR = 365 * 24 * 3600


def test_procfile_serves_the_pages_and_the_static_files(bake):
    project = bake()
    url = serve_as_procfile(project)

    status, _, page = get(f"{url}/admin/login/")
    assert status == 200
    for path in ("/static/admin/css/base.css", "/static/demoapp/tasks.js"):
        status, _, body = get(url + path)
        assert status == 200 and body, path

    # Pages link to names with a hash of the content, which browsers may keep for good.
    css = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert css, page[:2000]
    manifest = json.loads((project.path / "staticfiles" / "staticfiles.json").read_text())
    js = f"/static/{manifest['paths']['demoapp/tasks.js']}"
    for path in (css.group(1).decode(), js):
        status, headers, _ = get(url + path, {"Accept-Encoding": "gzip"})
        assert status == 200, path
        cache = headers["Cache-Control"]
        assert "immutable" in cache and int(re.search(r"max-age=(\d+)", cache)[1]) >= YEAR
        assert headers["Content-Encoding"] == "gzip", path


@pytest.mark.servers
def test_web_health_check_follows_the_database(bake, tmp_path):
    database = servers.postgresql(tmp_path / "postgresql")
    try:
        project = bake()
        project.env["DATABASE_URL"] = servers.create_database(database, "site")
        url = serve_as_procfile(project, https=True)
        # HTTPS on: pages redirect, the health check answers over plain HTTP.
        assert get(f"{url}/admin/login/")[0] == 301
        status, headers, body = get(f"{url}/health/")
        assert (status, body) == (200, b"ok\n")
        assert "no-store" in headers["Cache-Control"]

        database.stop()
        status, _, body = get(f"{url}/health/")
        assert (status, body) == (503, b"unavailable\n")  # and nothing about why
        web = project.processes[-1]
        assert "the database does not answer" in web.output()  # the log says why

        database.start()
        wait_until(lambda: answers(f"{url}/health/"), "/health/ to recover", web)
    finally:
        database.stop()


def test_worker_health_unit_pings_the_worker_unit(bake):
    project = bake()
    project.manage("migrate", "--no-input")
    worker = spawn(project, "worker", unit_command(project, "celery-worker.service"))
    worker.wait_for("ready.")
    ping = shlex.split(unit_command(project, "celery-worker-health.service"))

    done = subprocess.run(ping, cwd=project.path, env=project.environ(), capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    machine_id = Path("/etc/machine-id").read_text().strip()
    assert f"celery-{machine_id}@{socket.gethostname()}: OK".encode() in done.stdout

    worker.stop()
    done = subprocess.run(ping, cwd=project.path, env=project.environ(), capture_output=True)
    assert done.returncode != 0, done.stdout


def test_beat_check_and_watchdog_follow_beat(bake, tmp_path):
    project = bake()
    project.manage("migrate", "--no-input")
    compose = yaml.safe_load((project.path / "compose.yaml").read_text())
    check = compose["services"]["beat"]["healthcheck"]["test"][1:]
    assert check == ["python", "manage.py", "checkbeat", "--max-age", "60"]
    # Beat ticks every second here, and a tick 3 s old is late.
    check[-1] = "3"
    project.env["BEAT_HEARTBEAT"] = str(tmp_path / "heartbeat")
    watchdog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    watchdog.bind(str(tmp_path / "notify"))
    project.env["NOTIFY_SOCKET"] = str(tmp_path / "notify")

    def healthy():
        return subprocess.run(check, cwd=project.path, env=project.environ()).returncode == 0

    assert not healthy()  # beat never ran
    beat = spawn(project, "beat", procfile(project)["beat"] + " --max-interval 1")
    wait_until(healthy, "checkbeat to pass", beat)
    watchdog.settimeout(DEADLINE)
    assert watchdog.recv(100) == b"READY=1\nWATCHDOG=1"

    beat.popen.send_signal(signal.SIGSTOP)  # hung
    try:
        wait_until(lambda: not healthy(), "checkbeat to fail")
        watchdog.setblocking(False)
        with pytest.raises(BlockingIOError):  # drain what was sent before it stopped
            while watchdog.recv(100):
                pass
        watchdog.settimeout(3)
        with pytest.raises(TimeoutError):
            watchdog.recv(100)
    finally:
        beat.popen.send_signal(signal.SIGCONT)
    wait_until(healthy, "checkbeat to pass again", beat)
    watchdog.settimeout(DEADLINE)
    assert watchdog.recv(100) == b"READY=1\nWATCHDOG=1"
    watchdog.close()
