import uuid
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

# Helpers in support/ assert too (pyenv_python, procfile.wait_until): pytest reports their
# failures as it reports the tests' own. It has to know before they are first imported.
pytest.register_assert_rewrite("support")

from support import servers  # noqa: E402
from support.project import TEMPLATE, Project, make_venv  # noqa: E402

# Servers started once per test session, by kind.
SERVERS = {
    "redis": servers.redis,
    "postgresql": servers.postgresql,
    "rabbitmq": servers.rabbitmq,
    "mariadb": servers.mariadb,
}


@pytest.fixture(scope="session")
def project_python(tmp_path_factory):
    """One virtual environment for every generated project: the dependencies of
    a project generated with every option's driver, plus all its extras."""
    reference = cookiecutter(
        str(TEMPLATE),
        no_input=True,
        output_dir=str(tmp_path_factory.mktemp("reference")),
        extra_context={
            "broker": "redis",
            "database": "postgresql",
            "use_flower": "y",
            "use_json_logs": "y",
            "use_sentry": "y",
            "use_prometheus": "y",
            "use_opentelemetry": "y",
        },
    )
    pyproject = Path(reference) / "pyproject.toml"
    venv = tmp_path_factory.getbasetemp() / "project-venv"
    return make_venv(venv, "python3", ["-r", pyproject, "--all-extras"])


@pytest.fixture
def bake(cookies, project_python):
    """Generate a project with the given answers; return it as a Project."""

    def bake(**answers):
        result = cookies.bake(extra_context=answers)
        assert result.exit_code == 0, result.exception
        project = Project(Path(result.project_path), python=project_python)
        yield_projects.append(project)
        return project

    yield_projects = []
    yield bake
    for project in yield_projects:
        project.stop_all()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """server(kind): a real server of that kind on 127.0.0.1, started once per session."""
    started = {}

    def get(kind):
        if kind not in started:
            started[kind] = SERVERS[kind](tmp_path_factory.mktemp(kind))
        return started[kind]

    yield get
    for each in started.values():
        each.stop()


@pytest.fixture
def database_url(request):
    """database_url(kind): a new database of that kind, as DATABASE_URL.

    A test that asks for a server's database must be marked `servers`."""

    def url(kind):
        if kind == "sqlite":
            return "sqlite:///db.sqlite3"
        server = request.getfixturevalue("server")
        kind = {"mysql": "mariadb"}.get(kind, kind)
        return servers.create_database(server(kind), f"db_{uuid.uuid4().hex[:12]}")

    return url


def server_group(item):
    """The xdist group of a test that uses real servers: "faults" for the tests that stop
    and restart them (test_faults.py), "multihost" for those that run servers of their own
    on simulated hosts (test_multihost.py; its RabbitMQ cluster's tests, which mostly wait
    for RabbitMQ, in a group of their own, free to run beside the others), "servers" for
    the others. Each group runs in one pytest process and starts each server once: a
    restart never hits a test beside it."""
    if item.path.name == "test_multihost.py" and "rabbitmq" in item.name:
        return "multihost-rabbitmq"
    groups = {"test_faults.py": "faults", "test_multihost.py": "multihost"}
    return groups.get(item.path.name, "servers")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    """Tests that use a real server are marked `servers`, and run in their xdist group."""
    for item in items:
        if "server" in getattr(item, "fixturenames", ()) or item.get_closest_marker("servers"):
            item.add_marker(pytest.mark.servers)
            item.add_marker(pytest.mark.xdist_group(server_group(item)))


def pytest_runtest_setup(item):
    """A server test that xdist did not group fails, rather than sharing servers with a
    test that restarts them (grouping once stopped, silently, after a pytest upgrade:
    pytest-xdist#1386)."""
    grouping = item.config.getoption("loadgroup", False) and item.get_closest_marker("servers")
    if grouping and not item.nodeid.endswith(f"@{server_group(item)}"):
        pytest.fail("--dist loadgroup did not put this test in its servers group", pytrace=False)
