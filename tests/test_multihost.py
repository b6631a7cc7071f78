"""Workers, the broker and the database on separate machines: a host lost, a partition.

Simulated hosts (support/hosts.py: network namespaces on one bridge): a Redis host and a
PostgreSQL host, their servers on their usual ports, started here and used by this module
only; two worker hosts, each running the worker as deploy/systemd/celery-worker.service
does; and a sender host, the web, which migrates, sends the tasks and counts their
results. The project is configured as its deployment files say, by environment:
CELERY_BROKER_URL and DATABASE_URL name the other hosts' addresses. Each test injects one
fault and prints a FIGURES line; the figures and their reasons are in docs/reliability.md.

    .venv/bin/python -m pytest -m multihost -n 0 -rA   # -rA prints the FIGURES lines
"""

import itertools
import json
import re
import shlex
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest

from support import hosts, servers
from support.project import Project, run, unit_command

pytestmark = [pytest.mark.servers, pytest.mark.multihost]

WORKER_UNIT = "celery-worker.service"
HEALTH_UNIT = "celery-worker-health.service"
ANSWERS = {"broker": "redis", "database": "postgresql", "use_celery_beat": "n"}
TASKS = 24  # "long" tasks, long_task(20, 0.1): ~2 s each
redis_databases = itertools.count(1)  # one per test: no stray messages


@pytest.fixture(scope="module")
def network():
    with hosts.Network() as network:
        yield network


@pytest.fixture(scope="module")
def redis_server(network, tmp_path_factory):
    server = servers.redis(tmp_path_factory.mktemp("redis"), network.host("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgresql_server(network, tmp_path_factory):
    folder = tmp_path_factory.mktemp("postgresql")
    server = servers.postgresql(folder, network.host("postgresql"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def migrated(cookies_session, project_python, network, redis_server, postgresql_server):
    """The name of a database migrated for this module's projects, which each test copies:
    one migrate instead of one a test."""
    result = cookies_session.bake(extra_context=ANSWERS)
    project = Project(result.project_path, python=project_python)
    project.env |= {
        "CELERY_BROKER_URL": redis_server.url,
        "DATABASE_URL": servers.create_database(postgresql_server, "migrated"),
    }
    web = network.host("migrate")
    try:
        project.on(web).manage("migrate", "--no-input")
    finally:
        network.remove(web)
    return "migrated"


@dataclass
class Site:
    """A project deployed on the hosts: `web` sends and counts, `workers` run workers."""

    project: Project
    web: hosts.Host
    workers: list
    processes: dict = field(default_factory=dict)  # a worker host's label: its worker

    @property
    def sender(self):
        return self.project.on(self.web)

    def start_workers(self, *hosts):
        """A worker on each host, started as the systemd unit says (concurrency: 2 CPUs)."""
        for host in hosts:
            command = unit_command(self.project, WORKER_UNIT, host.hostname, host.machine_id)
            launch = self.project.on(host).launch
            self.processes[host.label] = launch(f"worker-{host.label}", shlex.split(command))
        for host in hosts:
            self.processes[host.label].wait_for("ready.")

    def node(self, host):
        """The worker's node name on `host`, from its banner."""
        return re.search(r"(\S+@\S+) v\d", self.processes[host.label].output())[1]

    def runs(self, event="received"):
        """How many times each task was received (or succeeded), on any worker host."""
        found = Counter()
        for worker in self.processes.values():
            found.update(re.findall(rf"Task \S+\[([0-9a-f-]+)\] {event}", worker.output()))
        return found


@pytest.fixture
def deploy(bake, network, redis_server, postgresql_server, migrated):
    """deploy(hostnames, transport_options): a migrated project, its web and worker hosts."""
    made = []

    def deploy(hostnames=("worker1", "worker2"), transport_options=None):
        project = bake(**ANSWERS)
        broker = redis_server.url.rsplit("/", 1)[0]
        name = f"db_{uuid.uuid4().hex[:12]}"
        database = servers.create_database(postgresql_server, name, template=migrated)
        project.env |= {
            "CELERY_BROKER_URL": f"{broker}/{next(redis_databases)}",
            "DATABASE_URL": database,
        }
        if transport_options:
            project.env["CELERY_BROKER_TRANSPORT_OPTIONS"] = json.dumps(transport_options)
        web = network.host("web")
        made.append(web)
        for number, hostname in enumerate(hostnames, 1):
            made.append(network.host(f"worker{number}", hostname))
        return Site(project, web, made[1:])

    yield deploy
    for host in made:
        network.remove(host)


def report(what, site, outcome, recovered=None):
    again = sum(n - 1 for n in site.runs().values())
    twice = sum(n > 1 for n in site.runs("succeeded").values())
    lost = outcome["sent"] - outcome["done"]
    recovery = "" if recovered is None else f", recovered in {recovered:.1f} s"
    print(
        f"FIGURES {what}: {outcome['sent']} sent, {outcome['done']} done, {lost} lost,"
        f" {again} delivered again, {twice} run twice{recovery}; states {outcome['states']}"
    )
    return lost


# Redis hands a dead worker's unacknowledged tasks to another after the visibility timeout,
# in a sweep every unacked_restore_interval (kombu's 10 s; settings.py's throttle of 1 makes
# each sweep a scan). 600 s in settings.py, twice the hard time limit; 10 s here, five
# times these 2 s tasks, so no running task is handed out twice.
VISIBILITY = 10
SWEEP = 10
# What the settings promise for a dead host's tasks: the visibility timeout, a sweep, the
# task itself; plus room for the waiting process to start on a busy machine.
PROMISED = VISIBILITY + SWEEP + 2 + 15


def test_worker_host_powered_off(deploy):
    """A worker host loses power while both its processes run a task: the other host goes
    on, and does those two tasks once Redis' visibility timeout has passed."""
    site = deploy(transport_options={"visibility_timeout": VISIBILITY})
    lost_host, other = site.workers
    site.start_workers(*site.workers)
    site.sender.send(TASKS, "long")
    # Both processes busy and each task with 0.6 s or more to go: the worker is between
    # two fetches from Redis, which a power cut must not hit (reliability.md says why).
    held = site.sender.faults("busy", site.node(lost_host), 2, 1.4)["ids"]
    cut_at = time.time()
    lost_host.power_off()
    (site.project.path / "held.txt").write_text("\n".join(held))

    again = site.sender.wait_done(ids="held.txt", timeout=PROMISED)
    finished = site.sender.faults("finished", *held)
    recovered = max(row["at"] for row in finished.values()) - cut_at
    outcome = site.sender.wait_done()
    report("worker host powered off (Redis, visibility 10 s)", site, outcome, recovered)
    assert again["done"] == 2, f"not done within {PROMISED} s: {again}"
    assert {row["worker"] for row in finished.values()} == {site.node(other)}
    assert outcome["done"] == outcome["sent"] == TASKS, outcome


def test_two_worker_hosts_with_one_host_name(deploy):
    """Two machines named alike, each running the worker unit: `celery inspect ping` tells
    their workers apart, and each machine's health check pings its own worker only."""
    site = deploy(hostnames=("worker", "worker"))
    first, second = site.workers
    site.start_workers(*site.workers)
    replies = json.loads(site.sender.celery("inspect", "ping", "--json"))
    assert len(replies) == 2, replies
    assert set(replies) == {site.node(first), site.node(second)}

    def healthy(host):
        command = unit_command(site.project, HEALTH_UNIT, host.hostname, host.machine_id)
        environ = site.project.environ()
        return run([*host.prefix, *shlex.split(command)], cwd=site.project.path, env=environ)

    site.processes[first.label].stop()
    assert "OK" in healthy(second)
    with pytest.raises(AssertionError):
        healthy(first)
