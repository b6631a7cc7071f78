"""The deployment files of generated projects: compose.yaml, systemd units, Procfile.

What they run is run in tests/test_production.py."""

import json
import re
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from support.matrix import MATRIX, ROWS
from support.project import uv

# The Compose specification's JSON schema, as the docker-compose 1.29 package ships it:
# no compose plugin runs here to say `docker compose config`.
COMPOSE_PACKAGE = "docker-compose==1.29.2"
COMPOSE_SCHEMA = "compose/config/compose_spec.json"


@pytest.fixture(scope="session")
def compose_schema(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compose-schema")
    uv("pip", "install", "--quiet", "--no-deps", "--target", folder, COMPOSE_PACKAGE)
    return json.loads((folder / COMPOSE_SCHEMA).read_text())


@pytest.mark.parametrize("answers", MATRIX, ids=[row.replace(" ", "-") for row in ROWS])
def test_compose_file(bake, compose_schema, answers):
    project = bake(**answers)
    compose = yaml.safe_load((project.path / "compose.yaml").read_text())
    jsonschema.Draft201909Validator(compose_schema).validate(compose)

    services = compose["services"]
    expected = {"migrate", "web", "worker"}
    expected |= {"beat"} if answers["use_celery_beat"] == "y" else set()
    expected |= {"flower"} if answers["use_flower"] == "y" else set()
    expected |= {"postgresql": {"postgres"}, "mysql": {"mariadb"}}.get(answers["database"], set())
    expected |= {"redis": {"redis"}, "rabbitmq": {"rabbitmq"}}.get(answers["broker"], set())
    assert set(services) == expected
    # Every process has a health check: the web's /health/, the worker's ping, beat's ticks.
    assert "http://127.0.0.1:8000/health/" in services["web"]["healthcheck"]["test"][-1]
    assert "inspect ping" in services["worker"]["healthcheck"]["test"][-1]
    if "beat" in services:
        beat = services["beat"]
        assert beat["deploy"]["replicas"] == 1
        assert "--scheduler" not in beat["command"]  # the settings name the heartbeat one
        assert beat["healthcheck"]["test"][1:4] == ["python", "manage.py", "checkbeat"]
        assert beat["environment"]["BEAT_HEARTBEAT"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)  # nothing on public interfaces
        if "image" in service:  # the servers: each checked and password-protected
            assert "healthcheck" in service, name
    env = (project.path / ".env").read_text()
    for variable in re.findall(r"\$\{(\w+):\?", (project.path / "compose.yaml").read_text()):
        assert re.search(rf"^{variable}=\S+$", env, re.M), f"{variable} missing from .env"


@pytest.mark.parametrize("beat", ["y", "n"])
def test_systemd_units(bake, beat):
    project = bake(use_celery_beat=beat)
    units = sorted((project.path / "deploy" / "systemd").iterdir())
    expected = ["celery-worker-health.service", "celery-worker-health.timer"]
    expected += ["celery-worker.service", "web.service"]
    expected += ["celery-beat.service"] if beat == "y" else []
    assert [u.name for u in units] == sorted(expected)
    verify = shutil.which("systemd-analyze")
    assert verify, "systemd-analyze not found: apt-get install systemd"
    for unit in units:
        text = unit.read_text()
        # Point the unit at this machine's paths: verify checks that ExecStart exists.
        text = text.replace(f"/srv/{project.slug}/.venv", str(project.python.parent.parent))
        text = text.replace(f"/srv/{project.slug}", str(project.path))
        text = re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.M)
        local = project.path / f"{project.slug}-{unit.name.removeprefix('celery-')}"
        local.write_text(text)
        done = subprocess.run([verify, "verify", local], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    text = {unit.name: unit.read_text() for unit in units}
    # The health unit pings the node name the worker unit gives its worker.
    assert "--hostname celery-%m@%H" in text["celery-worker.service"]
    assert "--destination celery-%m@%H" in text["celery-worker-health.service"]
    assert f"try-restart {project.slug}-worker.service" in text["celery-worker-health.service"]
    assert "Type=notify" in text["web.service"]  # gunicorn notifies systemd
    if beat == "y":
        beat_unit = text["celery-beat.service"]
        pidfile = re.search(r"--pidfile (\S+)", beat_unit).group(1)
        assert f"ExecStartPre=/bin/rm -f {pidfile}" in beat_unit
        # Its scheduler pings the watchdog at every tick.
        assert "--scheduler" not in beat_unit
        assert "Type=notify" in beat_unit and "WatchdogSec=" in beat_unit


def test_procfile(bake):
    project = bake(use_flower="y")
    entries = dict(
        line.split(": ", 1) for line in (project.path / "Procfile").read_text().splitlines()
    )
    assert set(entries) == {"release", "web", "worker", "beat", "flower"}
    assert entries["worker"].startswith(f"celery -A {project.slug} worker")
    assert "--pidfile=" in entries["beat"]
    assert "--scheduler" not in entries["beat"]
    assert entries["release"].endswith("&& python manage.py collectstatic --no-input")
    # The web command imports: gunicorn is a dependency and the WSGI module loads.
    project.run("-c", f"import gunicorn, {project.slug}.wsgi")
