"""Production settings: bad environment stops start-up with a message naming the variable."""

import subprocess

import pytest

from support.project import PRODUCTION

BAD = [
    ({"SECRET_KEY": None}, "Set the SECRET_KEY environment variable"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY must be 50 or more random characters"),
    ({"SECRET_KEY": "a" * 60}, "SECRET_KEY must be 50 or more random characters"),
    ({"DATABASE_URL": None}, "Set the DATABASE_URL environment variable"),
    ({"DATABASE_URL": "db.sqlite3"}, "DATABASE_URL must be a database URL"),
    ({"DATABASE_URL": "http://example.com/db"}, "DATABASE_URL must be a database URL"),
    ({"CELERY_BROKER_URL": None}, "Set the CELERY_BROKER_URL environment variable"),
]


@pytest.fixture
def production(bake):
    """The default project with no .env: the production environment only, from the test."""
    project = bake()
    (project.path / ".env").unlink()
    project.env |= PRODUCTION | {"DATABASE_URL": "sqlite:///db.sqlite3"}
    project.env["CELERY_BROKER_URL"] = "filesystem://"
    return project


@pytest.mark.parametrize(("change", "message"), BAD, ids=[str(c) for c, _ in BAD])
@pytest.mark.parametrize(
    "command", [["manage.py", "check"], ["-m", "celery", "-A", "my_project", "report"]]
)
def test_bad_environment_stops_start_up(production, change, message, command):
    for key, value in change.items():
        if value is None:
            production.env.pop(key)
        else:
            production.env[key] = value
    done = subprocess.run(
        [production.python, *command], cwd=production.path, env=production.environ(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert message in last, done.stderr[-2000:]
    assert "ImproperlyConfigured" in last


def test_unknown_broker_stops_the_worker(production):
    # Settings take any broker URL (sqs://, rediss://...); kombu names a wrong one.
    production.env["CELERY_BROKER_URL"] = "nosuch://"
    worker = production.start("worker", "worker")
    assert worker.popen.wait(60) != 0
    assert worker.output().strip().splitlines()[-1] == "KeyError: 'No such transport: nosuch'"


def test_production_environment_passes_the_deploy_checks(production):
    production.manage("check", "--deploy", "--fail-level", "WARNING")
