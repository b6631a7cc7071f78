"""Real Redis, PostgreSQL, RabbitMQ, MariaDB and Prometheus servers for the tests.

Each server listens on 127.0.0.1 only, on a free port, keeps its data and log in
the folder it is given (for servers that run as their own user, a link to a folder
in /tmp until the tests exit: see _folder_for), and is stopped by its PID, never by
a process name. Redis, PostgreSQL and RabbitMQ also run on a simulated host
(support/hosts.py): there on their usual port, listening on the host's address too, and
RabbitMQ's nodes on several hosts form a cluster (rabbitmq_cluster).
`scripts/install-servers` installs the programs. Runs as root: PostgreSQL,
RabbitMQ and MariaDB run as their own system users.

    server = servers.postgresql(tmp_path / "postgresql")
    url = servers.create_database(server, "demo")
    ...
    server.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 60  # seconds; RabbitMQ takes ~5
STOP_TIMEOUT = 30  # seconds, then SIGKILL


def binary(name: str) -> str:
    """The path of a program, also looking where Debian puts servers."""
    folders = [os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]
    folders += sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    path = shutil.which(name, path=os.pathsep.join(folders))
    if path is None:
        raise RuntimeError(f"{name} not found: run scripts/install-servers as root")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list, env: dict | None = None) -> str:
    """Run a setup command; raise with its output if it fails."""
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, timeout=120
    )
    if done.returncode != 0:
        words = " ".join(map(str, command))
        raise RuntimeError(f"{words} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _probe(command: list, timeout: float = 5) -> str | None:
    """The output of a check, or None if it fails or hangs."""
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout if done.returncode == 0 else None


def _folder_for(user: str, folder: Path) -> Path:
    """A folder `user` owns and can reach, standing in for `folder`; its real path.

    pytest resets its root (/tmp/pytest-of-<user>) to mode 0700 whenever a pytest
    session starts there, as the generated projects' own test runs do, and a server
    running as another user then loses its data mid-run. So the data live in a
    folder of their own in /tmp, `folder` links to it, and they move back into
    `folder`, logs and all, when the tests' process exits.
    """
    if folder.is_symlink():
        return folder.resolve()
    if folder.is_dir():
        folder.rmdir()  # as tmp_path_factory.mktemp() leaves it: empty
    folder.parent.mkdir(parents=True, exist_ok=True)
    real = Path(tempfile.mkdtemp(prefix=f"{folder.name}-"))
    shutil.chown(real, user, user)
    folder.symlink_to(real, target_is_directory=True)
    atexit.register(_move_back, real, folder)
    return real


def _move_back(real: Path, folder: Path) -> None:
    if folder.is_symlink():
        folder.unlink()
        shutil.move(real, folder)
    else:  # the link went with its parent folder: so do the data
        shutil.rmtree(real, ignore_errors=True)


def _state(pid: int) -> str | None:
    """A process's state letter ("Z": exited, not yet reaped), None if gone."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z")


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _signal(pid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _stop_pid(pid: int | None, what: str, command: list | None = None) -> None:
    """Stop a process with `command` (else SIGTERM) and wait until it is gone."""
    if pid is None or not _alive(pid):
        return
    if command is None or _probe(command, STOP_TIMEOUT) is None:
        _signal(pid, signal.SIGTERM)
    try:
        _wait_until(lambda: not _alive(pid), STOP_TIMEOUT, f"{what} {pid} to exit")
    except TimeoutError:
        _signal(pid, signal.SIGKILL)
        _wait_until(lambda: not _alive(pid), 5, f"{what} {pid} to die")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return str(error)


@dataclass
class Server:
    name: str
    url: str
    port: int
    folder: Path
    process: subprocess.Popen | None = field(default=None, repr=False)
    # On a simulated host (support/hosts.py): its address, where the server listens too,
    # and the prefix that runs each of the server's commands there.
    address: str = "127.0.0.1"
    prefix: tuple = ()

    user = ""  # the system user it runs as; "" for root
    log_name = "server.log"  # in `folder`; quoted when the server fails to start
    pid_name = ""  # in `folder`, for servers that detach: first line is the PID

    @property
    def log(self) -> Path:
        return self.folder / self.log_name

    def start(self) -> None:
        """Start (again) on the same port with the same data."""
        try:
            self._launch()
            _wait_until(self._up, START_TIMEOUT, f"{self.name} on port {self.port}")
        except Exception as error:
            tail = f"--- end of {self.log} ---\n{_tail(self.log)}"
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {error}\n{tail}") from error

    def stop(self) -> None:
        """Stop by PID and wait until it has exited; fine to call again."""
        self._stop_server()

    def restart(self) -> None:
        self._stop_server()
        self.start()

    def _stop_server(self) -> None:
        _stop_pid(self._pid(), self.name, self._stop_command())

    def _pid(self) -> int | None:
        if self.process:
            return self.process.pid
        with contextlib.suppress(OSError, IndexError, ValueError):
            return int((self.folder / self.pid_name).read_text().split()[0])
        return None

    def _spawn(self, *command: str | Path) -> None:
        """Run a server in the foreground, in its own session (Ctrl-C spares it)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.prefix, *command], stdout=log, stderr=log, start_new_session=True
            )

    def _up(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise RuntimeError(f"it exited with status {self.process.returncode}")
        return self._ready()

    def _stop_command(self) -> list | None:
        return None  # SIGTERM

    def _addresses(self, separator: str) -> str:
        """Where it listens: 127.0.0.1, and its host's address if it has one."""
        return separator.join(dict.fromkeys(["127.0.0.1", self.address]))

    def _launch(self) -> None:  # start the server; may return before it is ready
        raise NotImplementedError

    def _ready(self) -> bool:  # accepts connections?
        raise NotImplementedError

    def _create_database(self, name: str, template: str | None = None) -> None:
        raise ValueError(f"create_database does not apply to {self.name}")


class _Redis(Server):
    log_name = "redis.log"
    usual_port = 6379

    def _launch(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # No snapshots while running; stop() saves one, so a restart keeps the data.
        options = f"--port {self.port} --bind {self._addresses(' ')} --appendonly no".split()
        if self.address != "127.0.0.1":  # no password: the simulated hosts connect too
            options += ["--protected-mode", "no"]
        self._spawn(binary("redis-server"), *options, "--save", "", "--dir", self.folder)

    def _cli(self, *args: str) -> list:
        return [*self.prefix, binary("redis-cli"), "-h", "127.0.0.1", "-p", str(self.port), *args]

    def _ready(self) -> bool:
        return _probe(self._cli("ping")) == "PONG\n"

    def _stop_command(self) -> list:
        return self._cli("shutdown", "save")


class _PostgreSQL(Server):
    user = "postgres"
    log_name, pid_name = "postgresql.log", "data/postmaster.pid"
    usual_port = 5432

    def _as_postgres(self, program: str, *args: str | Path) -> list:
        """PostgreSQL refuses to run as root."""
        return [*self.prefix, "runuser", "-u", "postgres", "--", binary(program), *args]

    def _pg_ctl(self, *args: str | Path) -> list:
        return self._as_postgres("pg_ctl", "-D", self.folder / "data", *args)

    def _launch(self) -> None:
        data = self.folder / "data"
        if stale := self._pid():  # killed: it refuses to start while its zombie lingers
            _wait_until(lambda: _state(stale) != "Z", STOP_TIMEOUT, "a zombie to go")
        if not (data / "PG_VERSION").exists():
            options = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
            _run(self._as_postgres("initdb", "-D", data, *options))
            if self.address != "127.0.0.1":  # the hosts on its network connect too
                with (data / "pg_hba.conf").open("a") as hba:
                    hba.write("host all all samenet trust\n")
        # TCP only (-k '': no Unix socket). fsync=off: test data need not survive a crash.
        listen = self._addresses(",")
        options = f"-p {self.port} -c listen_addresses={listen} -k '' -c fsync=off"
        _run(self._pg_ctl("-l", self.log, "-o", options, "-w", "start"))

    def _psql(self, sql: str) -> list:
        tcp = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        return [*self.prefix, binary("psql"), *tcp, "-v", "ON_ERROR_STOP=1", "-c", sql]

    def _ready(self) -> bool:
        return _probe(self._psql("select 1")) is not None

    def _stop_command(self) -> list:
        return self._pg_ctl("-m", "fast", "stop")

    def _create_database(self, name: str, template: str | None = None) -> None:
        copy = f' TEMPLATE "{template}"' if template else ""
        _run(self._psql(f'CREATE DATABASE "{name}"{copy}'))


@dataclass
class _RabbitMQ(Server):
    node: str = "rabbit@localhost"
    config: str = ""  # rabbitmq.conf's lines
    dist_port: int = field(default_factory=free_port)  # Erlang distribution
    epmd_port: int = field(default_factory=free_port)  # our own Erlang port mapper
    user = "rabbitmq"
    pid_name = "rabbitmq.pid"
    usual_port = 5672

    @property
    def log(self) -> Path:
        return self.folder / "log" / f"{self.node}.log"

    def _env(self) -> dict:
        # As root, the Debian wrappers run the server and rabbitmqctl as user
        # rabbitmq with HOME=/var/lib/rabbitmq: both use the Erlang cookie there,
        # which the nodes of a cluster must share.
        env = os.environ | {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.address,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": self._addresses(","),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / self.pid_name),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
        }
        if not self.prefix:  # on this machine: Erlang's distribution on 127.0.0.1 only
            interface = "-kernel inet_dist_use_interface {127,0,0,1}"
            env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = interface
        return env

    def ctl(self, *args: str) -> str:
        """Run rabbitmqctl against this node; its output."""
        return _run([*self.prefix, binary("rabbitmqctl"), *args], self._env())

    def _launch(self) -> None:
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(self.config)
        (self.folder / self.pid_name).unlink(missing_ok=True)  # stale after a kill -9
        _run([*self.prefix, binary("rabbitmq-server"), "-detached"], self._env())
        self.ctl("wait", str(self.folder / self.pid_name), "--timeout", "60")

    def _ready(self) -> bool:
        connect = f"exec 3<>/dev/tcp/{self.address}/{self.port}"  # where it is, this host
        return _probe([*self.prefix, "bash", "-c", connect]) is not None

    def join(self, other: _RabbitMQ) -> None:
        """Make this node, just started, a member of `other`'s cluster."""
        self.ctl("stop_app")
        self.ctl("join_cluster", other.node)
        self.ctl("start_app")

    # _stop_server(): RabbitMQ shuts down cleanly on SIGTERM, faster than rabbitmqctl.
    def stop(self) -> None:
        """Stop RabbitMQ, then its port mapper (kept running by restart())."""
        super().stop()
        for pid in self.epmd_pids():
            _stop_pid(pid, "epmd")

    def epmd_pids(self) -> set[int]:
        """The port mapper the server started, found by its port (not by name)."""
        ss = _run([*self.prefix, "ss", "-Hltnp", f"sport = :{self.epmd_port}"])
        return {int(pid) for pid in re.findall(r"pid=(\d+)", ss)}


class _MariaDB(Server):
    user = "mysql"
    log_name = "mariadb.log"

    def _launch(self) -> None:
        cnf, sock = self.folder / "my.cnf", self.folder / "mysqld.sock"  # /etc/mysql is not read
        cnf.write_text(
            f"[mysqld]\nuser = mysql\ndatadir = {self.folder / 'data'}\nsocket = {sock}\n"
            f"pid-file = {self.folder / 'mariadb.pid'}\n"
            f"port = {self.port}\nbind-address = 127.0.0.1\n"
            "character-set-server = utf8mb4\ncollation-server = utf8mb4_unicode_ci\n"
            f"[client]\nuser = root\nsocket = {sock}\n"
        )
        if not (self.folder / "data" / "mysql").exists():
            options = ["--auth-root-authentication-method=normal", "--skip-test-db"]
            _run([binary("mariadb-install-db"), f"--defaults-file={cnf}", *options])
        self._spawn(binary("mariadbd"), f"--defaults-file={cnf}")

    def _client(self, *args: str) -> list:
        return [binary("mariadb"), f"--defaults-file={self.folder / 'my.cnf'}", *args]

    def _ready(self) -> bool:
        tcp = ["-h127.0.0.1", f"-P{self.port}", "--connect-timeout=2"]
        return _probe(self._client(*tcp, "-e", "select 1")) is not None

    def _create_database(self, name: str, template: str | None = None) -> None:
        if template:
            raise ValueError("MariaDB has no template databases")
        charset = "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        _run(self._client("-e", f"CREATE DATABASE `{name}` {charset}"))


@dataclass
class _Prometheus(Server):
    """Scrapes `jobs` (each {"job_name": ..., "static_configs": ...}) every second."""

    jobs: list = field(default_factory=list)
    log_name = "prometheus.log"

    def _launch(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {"global": {"scrape_interval": "1s"}, "scrape_configs": self.jobs}
        # JSON is YAML: Prometheus reads it as its configuration.
        (self.folder / "prometheus.yml").write_text(json.dumps(config))
        self._spawn(
            binary("prometheus"),
            f"--config.file={self.folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address={self.address}:{self.port}",
        )

    def _ready(self) -> bool:
        ready = f"{self.url}/-/ready"
        with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=2) as response:
            return response.status == 200
        return False

    def query(self, expression: str) -> list:
        """The result of an instant query through Prometheus' HTTP API."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]


def _started(kind: type[Server], name: str, url: str, folder: Path, host=None, **fields) -> Server:
    """Start a server on a free port of 127.0.0.1, or on `host`, a simulated host
    (support/hosts.py), where every port is free: on the server's usual one. `fields`
    are the server's own (a dataclass field of its kind)."""
    folder = Path(folder).absolute()
    if kind.user:
        folder = _folder_for(kind.user, folder)
    if host is None:
        port = free_port()
        url = url.format(address="127.0.0.1", port=port)
        server = kind(name, url, port, folder, **fields)
    else:
        port, address = kind.usual_port, host.address
        url = url.format(address=address, port=port)
        server = kind(name, url, port, folder, address=address, prefix=tuple(host.prefix), **fields)
    server.start()
    return server


def redis(folder: Path, host=None) -> Server:
    return _started(_Redis, "redis", "redis://{address}:{port}/0", folder, host)


def postgresql(folder: Path, host=None) -> Server:
    url = "postgres://postgres@{address}:{port}/postgres"
    return _started(_PostgreSQL, "postgresql", url, folder, host)


def rabbitmq(folder: Path, host=None, config: str = "") -> Server:
    """A RabbitMQ node, with `config` as its rabbitmq.conf; on a simulated host, one that
    can join others (`join`): named rabbit@HOSTNAME, with Erlang's port mapper and
    distribution on their usual ports."""
    if host is None:
        url = "amqp://guest:guest@{address}:{port}//"
        return _started(_RabbitMQ, "rabbitmq", url, folder, config=config)
    fields = {"node": f"rabbit@{host.hostname}", "dist_port": 25672, "epmd_port": 4369}
    fields["config"] = config
    url = "amqp://{address}:{port}//"  # guest connects from 127.0.0.1 only: add a user
    return _started(_RabbitMQ, "rabbitmq", url, folder, host, **fields)


def rabbitmq_cluster(folders: list[Path], hosts: list, config: str = "") -> list[Server]:
    """A RabbitMQ cluster: a node on each of `hosts`, all joined to the first. Each node's
    url has the user celery (password celery), which may connect from any host."""
    with ThreadPoolExecutor(len(hosts)) as pool:  # each takes seconds to boot: all at once
        starts = [pool.submit(rabbitmq, folder, host, config)
                  for folder, host in zip(folders, hosts, strict=True)]  # fmt: skip
    nodes = [start.result() for start in starts if not start.exception()]
    try:
        for failed in filter(None, (start.exception() for start in starts)):
            raise failed
        for node in nodes[1:]:
            node.join(nodes[0])
        nodes[0].ctl("add_user", "celery", "celery")
        nodes[0].ctl("set_permissions", "-p", "/", "celery", ".*", ".*", ".*")
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    for node in nodes:
        node.url = node.url.replace("amqp://", "amqp://celery:celery@")
    return nodes


def mariadb(folder: Path) -> Server:
    return _started(_MariaDB, "mariadb", "mysql://root@{address}:{port}/mysql", folder)


def prometheus(folder: Path, jobs: list) -> Server:
    """A Prometheus server scraping `jobs`, its scrape_configs, every second."""
    return _started(_Prometheus, "prometheus", "http://{address}:{port}", folder, jobs=jobs)


def create_database(server: Server, name: str, template: str | None = None) -> str:
    """Create an empty database on PostgreSQL or MariaDB and return its URL; on PostgreSQL,
    a copy of the database `template` if given (which nothing may be connected to)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain database name: {name!r}")
    server._create_database(name, template)
    return f"{server.url.rsplit('/', 1)[0]}/{name}"
