"""Real Redis, PostgreSQL, RabbitMQ and MariaDB servers for the tests.

Each server listens on 127.0.0.1 only, on a free port, keeps everything in the
folder it is given, and is stopped by its PID (never by a process name).
`scripts/install-servers` installs the programs. Needs root: PostgreSQL,
RabbitMQ and MariaDB run as their own system users.

    server = servers.postgresql(tmp_path / "postgresql")
    url = servers.create_database(server, "demo")
    ...
    server.stop()
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 60  # seconds; RabbitMQ alone takes ~5 s
STOP_TIMEOUT = 30  # seconds before SIGKILL


def binary(name: str) -> str:
    """Absolute path of a program, also looking where Debian puts servers."""
    extra = ["/usr/sbin", "/sbin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"))]
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *extra]))
    if path is None:
        raise RuntimeError(f"{name} not found: run scripts/install-servers as root")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _succeeds(*command: str | Path) -> bool:
    return subprocess.run(command, capture_output=True, timeout=30).returncode == 0


def _as(user: str, *command: str | Path) -> list[str | Path]:
    return ["runuser", "-u", user, "--", *command] if os.geteuid() == 0 else list(command)


def _folder_for(user: str, folder: Path) -> None:
    """Create `folder` owned by `user`, who must also be able to reach it."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, user, user)
    # pytest's temporary folders are 0700: let the service user pass through ours.
    for parent in folder.resolve().parents:
        mode = parent.stat()
        if mode.st_uid == os.geteuid() and not mode.st_mode & stat.S_IXOTH:
            parent.chmod(mode.st_mode | stat.S_IXOTH)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _stop_pid(pid: int | None, what: str, command: list | None = None) -> None:
    """Stop a process with `command` (or SIGTERM) and wait until it is gone."""
    if pid is None or not _alive(pid):
        return
    if command is None or subprocess.run(command, capture_output=True).returncode != 0:
        os.kill(pid, signal.SIGTERM)
    try:
        _wait_until(lambda: not _alive(pid), STOP_TIMEOUT, f"{what} (pid {pid}) to exit")
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        _wait_until(lambda: not _alive(pid), 5, f"{what} (pid {pid}) to die")


def _listening_pids(port: int) -> set[int]:
    lines = _run("ss", "-Hltnp", f"sport = :{port}")
    return {int(pid) for pid in re.findall(r"pid=(\d+)", lines)}


def _tail(path: Path, lines: int = 20) -> str:
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

    log: Path = field(init=False)  # set by each kind, quoted when it fails to start

    def start(self) -> None:
        """Start (again) on the same port with the same data."""
        try:
            self._launch()
            _wait_until(self._ready, START_TIMEOUT, f"{self.name} on 127.0.0.1:{self.port}")
        except Exception as error:
            self._stop_server()
            raise RuntimeError(
                f"{self.name} did not start: {error}\n--- end of {self.log} ---\n{_tail(self.log)}"
            ) from error

    def stop(self) -> None:
        self._stop_server()

    def restart(self) -> None:
        self._stop_server()
        self.start()

    def _stop_server(self) -> None:
        _stop_pid(self._pid(), self.name, self._stop_command())

    def _pid(self) -> int | None:
        try:
            return int(self._pidfile().read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def _pidfile(self) -> Path:
        raise NotImplementedError

    def _launch(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _stop_command(self) -> list | None:
        return None  # SIGTERM

    def _create_database(self, name: str) -> None:
        raise ValueError(f"create_database does not apply to {self.name}")


class _Redis(Server):
    def _pidfile(self) -> Path:
        return self.folder / "redis.pid"

    def _launch(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = self.folder / "redis.log"
        # No periodic snapshots; stop() saves one so that a restart keeps the data.
        _run(binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--daemonize", "yes", "--pidfile", self._pidfile(), "--dir", self.folder,
             "--save", "", "--appendonly", "no", "--logfile", self.log)  # fmt: skip

    def _ready(self) -> bool:
        return _run(binary("redis-cli"), "-p", str(self.port), "ping").strip() == "PONG"

    def _stop_command(self) -> list:
        return [binary("redis-cli"), "-p", str(self.port), "shutdown", "save"]


class _PostgreSQL(Server):
    def _pidfile(self) -> Path:
        return self.folder / "data" / "postmaster.pid"  # first line: the postmaster's PID

    def _launch(self) -> None:
        _folder_for("postgres", self.folder)
        self.log = self.folder / "postgresql.log"
        data = self.folder / "data"
        if not (data / "PG_VERSION").exists():
            _run(*_as("postgres", binary("initdb"), "-D", data, "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-sync"))  # fmt: skip
        # TCP only (no Unix socket); fsync=off: a test database need not survive a crash.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k '' -c fsync=off"
        _run(*_as("postgres", binary("pg_ctl"), "-D", data, "-l", self.log, "-o", options, "-w", "start"))

    def _ready(self) -> bool:
        return _succeeds(binary("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port))

    def _stop_command(self) -> list:
        return _as("postgres", binary("pg_ctl"), "-D", self.folder / "data", "-m", "fast", "stop")

    def _create_database(self, name: str) -> None:
        _run(binary("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"')  # fmt: skip


@dataclass
class _RabbitMQ(Server):
    dist_port: int = field(default_factory=_free_port)  # Erlang distribution
    epmd_port: int = field(default_factory=_free_port)  # our own Erlang port mapper
    epmd_pid: int | None = None

    def _pidfile(self) -> Path:
        return self.folder / "rabbitmq.pid"

    def _env(self) -> dict[str, str]:
        # The Debian wrappers run server and rabbitmqctl as user rabbitmq, with
        # HOME=/var/lib/rabbitmq: both read the same Erlang cookie there.
        return os.environ | {
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self._pidfile()),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _launch(self) -> None:
        _folder_for("rabbitmq", self.folder)
        self.log = self.folder / "log" / "rabbit@localhost.log"
        (self.folder / "enabled_plugins").write_text("[].\n")
        _run(binary("rabbitmq-server"), "-detached", env=self._env())
        _run(binary("rabbitmqctl"), "wait", self._pidfile(), "--timeout", "60", env=self._env())
        self.epmd_pid = self.epmd_pid or min(_listening_pids(self.epmd_port), default=None)

    def _ready(self) -> bool:
        return _accepts(self.port)

    def _stop_server(self) -> None:
        env = self._env()
        _stop_pid(self._pid(), self.name, [binary("rabbitmqctl"), "stop", self._pidfile()])

    def stop(self) -> None:
        super().stop()
        _stop_pid(self.epmd_pid, "epmd")  # stays up after RabbitMQ stops
        self.epmd_pid = None


@dataclass
class _MariaDB(Server):
    process: subprocess.Popen | None = field(default=None, repr=False)

    def _pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _client(self, *args: str) -> list:
        return [binary("mariadb"), "--no-defaults", "-uroot", *args]

    def _launch(self) -> None:
        _folder_for("mysql", self.folder)
        self.log = self.folder / "mariadb.log"
        data = self.folder / "data"
        if not (data / "mysql").exists():
            _run(binary("mariadb-install-db"), "--no-defaults", "--user=mysql", f"--datadir={data}",
                 "--auth-root-authentication-method=normal", "--skip-test-db")  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [binary("mariadbd"), "--no-defaults", "--user=mysql", f"--datadir={data}",
                 f"--port={self.port}", "--bind-address=127.0.0.1",
                 f"--socket={self.folder / 'mysqld.sock'}", f"--pid-file={self.folder / 'mariadb.pid'}",
                 "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # Ctrl-C spares it
            )  # fmt: skip

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"mariadbd exited with status {self.process.returncode}")
        return _succeeds(*self._client("-h127.0.0.1", f"-P{self.port}", "-e", "select 1"))

    def _create_database(self, name: str) -> None:
        _run(*self._client(f"--socket={self.folder / 'mysqld.sock'}", "-e",
             f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))  # fmt: skip


def _started(kind: type[Server], name: str, url: str, folder: Path) -> Server:
    port = _free_port()
    server = kind(name=name, url=url.format(port=port), port=port, folder=Path(folder))
    server.start()
    return server


def redis(folder: Path) -> Server:
    return _started(_Redis, "redis", "redis://127.0.0.1:{port}/0", folder)


def postgresql(folder: Path) -> Server:
    return _started(_PostgreSQL, "postgresql", "postgres://postgres@127.0.0.1:{port}/postgres", folder)


def rabbitmq(folder: Path) -> Server:
    return _started(_RabbitMQ, "rabbitmq", "amqp://guest:guest@127.0.0.1:{port}//", folder)


def mariadb(folder: Path) -> Server:
    return _started(_MariaDB, "mariadb", "mysql://root@127.0.0.1:{port}/mysql", folder)


def create_database(server: Server, name: str) -> str:
    """Create an empty database on a PostgreSQL or MariaDB server; return its URL."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain database name: {name!r}")
    server._create_database(name)
    return f"{server.url.rsplit('/', 1)[0]}/{name}"
