"""Each broker and database option against its real server, with real worker and beat processes."""

import base64
import json
import sys
import urllib.error
import urllib.request

import pytest

from support.demo import scenario
from support.project import run
from support.servers import binary, free_port

pytestmark = pytest.mark.servers


def check_scenario(outcome):
    """The five demo tasks succeeded with their results stored, ping and beat answered."""
    statuses = {row["task_name"]: row["status"] for row in outcome["demo"]["results"]}
    assert len(statuses) == 5
    assert set(statuses.values()) == {"SUCCESS"}, statuses
    assert [row["result"] for row in outcome["demo"]["results"]][:3] == [5, 20, 10]
    assert outcome["demo"]["widget_name"] == "renamed"
    assert "pong" in outcome["ping"]
    if "periodic" in outcome:
        assert outcome["periodic"]["result"] == "renamed by beat"


def http_get(url, credentials=None):
    request = urllib.request.Request(url)
    if credentials:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize(
    "answers",
    [
        {"broker": "redis", "database": "postgresql", "use_flower": "y"},
        {"broker": "rabbitmq", "database": "mysql"},
        {"broker": "rabbitmq", "database": "postgresql", "result_backend": "django-cache"},
    ],
    ids=lambda answers: "-".join(answers.values()),
)
def test_real_servers(bake, server, database_url, answers):
    project = bake(**answers)
    broker = {"redis": "redis", "rabbitmq": "rabbitmq"}[answers["broker"]]
    project.env["CELERY_BROKER_URL"] = server(broker).url
    project.env["DATABASE_URL"] = database_url(answers["database"])
    if answers.get("result_backend") == "django-cache":
        project.manage("createcachetable")
    check_scenario(scenario(project))


def test_flower_requires_its_login(bake, server, database_url):
    project = bake(broker="redis", use_flower="y")
    project.env["CELERY_BROKER_URL"] = server("redis").url
    project.env["DATABASE_URL"] = database_url("sqlite")
    project.manage("migrate", "--no-input")
    credentials = next(
        line.split("=", 1)[1]
        for line in (project.path / ".env").read_text().splitlines()
        if line.startswith("FLOWER_BASIC_AUTH=")
    )
    project.start_worker()
    port = free_port()
    project.start("flower", "flower", f"--port={port}").wait_for("Visit me at")

    status, body = http_get(f"http://127.0.0.1:{port}/api/workers?refresh=1", credentials)
    assert status == 200
    assert any(name.startswith("worker@") for name in json.loads(body))
    assert http_get(f"http://127.0.0.1:{port}/api/workers")[0] == 401
    assert http_get(f"http://127.0.0.1:{port}/api/workers", "admin:wrong")[0] == 401

    project.env["FLOWER_BASIC_AUTH"] = ""
    refused = project.start("flower-without-login", "flower", f"--port={free_port()}")
    assert refused.popen.wait(60) != 0
    assert "FLOWER_BASIC_AUTH must be set" in refused.output()


def test_default_project_moves_to_redis_and_postgresql_by_environment(bake, server, database_url):
    project = bake()  # the embedded default: filesystem broker, SQLite
    project.env["CELERY_BROKER_URL"] = server("redis").url
    project.env["DATABASE_URL"] = database_url("postgresql")
    outcome = scenario(project)
    check_scenario(outcome)
    assert not (project.path / ".broker").exists()  # the embedded broker was never used
    assert not (project.path / "db.sqlite3").exists()


def test_two_workers_on_one_redis_broker_with_the_long_queue_routed(bake, server, database_url):
    project = bake(broker="redis")
    project.env["CELERY_BROKER_URL"] = server("redis").url
    project.env["DATABASE_URL"] = database_url("postgresql")
    project.manage("migrate", "--no-input")
    project.start_worker("short", "--queues", "celery", "--concurrency", "2")
    project.start_worker("long", "--queues", "long", "--concurrency", "1")

    outcome = project.drive("spread")

    assert outcome["sent"] == outcome["succeeded"]  # nothing lost
    by_worker = outcome["workers"]
    assert set(by_worker["demoapp.tasks.long_task"]) == {"long"}
    assert set(by_worker["demoapp.tasks.add"]) == {"short"}


def test_servers_keep_their_data_when_another_pytest_session_starts(server, tmp_path):
    """Each pytest session makes pytest's temporary root 0700 as it starts, as the
    generated projects' own test runs do; servers that run as their own system users
    must keep reaching their data all the same."""
    rabbitmq, postgresql = server("rabbitmq"), server("postgresql")
    (tmp_path / "test_one.py").write_text("def test_one(tmp_path):\n    pass\n")
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path], cwd=tmp_path)

    run([binary("psql"), postgresql.url, "-c", "CHECKPOINT"])  # opens files by their full path
    run(["runuser", "-u", "rabbitmq", "--", "test", "-w", rabbitmq.folder / "mnesia"])
