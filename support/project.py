"""A generated project on disk, and the processes it runs: used by the tests, the benchmark
and the demo."""

import contextlib
import dataclasses
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
# Modules of this package that run inside a generated project, with support=True (environ).
DRIVE = ("-m", "support.drive")
FAULTS_DRIVE = ("-m", "support.faults_drive")
FAULTS_TIMEOUT = 120  # seconds any wait of faults_drive.py may take
# The interpreter that runs generated projects unless a test picks another.
PYTHON = os.environ.get("PROJECT_PYTHON", sys.executable)
# What a production deployment sets, for `check --deploy` and the settings' own checks.
PRODUCTION = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "example.com",
    "SECRET_KEY": secrets.token_urlsafe(50),
}


class CommandFailed(AssertionError):
    pass


def run(args, cwd=None, env=None, timeout=300):
    """Run a command; on failure, raise with its output, so the test report shows it."""
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode:
        raise CommandFailed(
            f"{' '.join(map(str, args))} exited {proc.returncode} in {cwd}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def uv(*args, timeout=600):
    uv_bin = shutil.which("uv") or Path(sys.executable).with_name("uv")
    return run([uv_bin, *args], timeout=timeout)


def make_venv(path, python, requirements=(), editable=None, extras=(), compiled=True):
    """A virtual environment at `path`; uv makes and fills one in seconds.

    `compiled`: to bytecode, as pip leaves a user's packages. uv does not by default, and
    where PYTHONDONTWRITEBYTECODE is set (this machine sets it) every process would compile
    Django and Celery again, a second of CPU at each start of a worker or a command."""
    uv("venv", "--quiet", "--allow-existing", "--python", python, path)
    venv_python = Path(path) / "bin" / "python"
    args = ["pip", "install", "--quiet", "--python", venv_python]
    if compiled:
        args.append("--compile-bytecode")
    if editable:
        spec = f"{editable}[{','.join(extras)}]" if extras else str(editable)
        args += ["-e", spec]
    args += list(requirements)
    uv(*args)
    return venv_python


def pyenv_python(version):
    """pyenv's newest Python `version` (e.g. "3.12"; its shim fails unless that version is
    selected), else one on PATH."""
    found = glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"))
    found.sort(key=lambda path: [int(n) for n in re.findall(r"\d+", path.split("/")[-3])])
    found = found[-1] if found else shutil.which(f"python{version}")
    assert found, f"Python {version} not found: install it (pyenv install {version})"
    return found


def install_on_python(project, version, folder):
    """Give `project` a virtual environment in `folder` on pyenv's Python `version`."""
    project.python = make_venv(
        folder, pyenv_python(version), ["-r", project.path / "pyproject.toml", "--extra", "dev"]
    )


def upstream_source(package, version, folder):
    """The source of `package` `version` from its sdist (which ships its tests), in `folder`."""
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", f"{package}=={version}", "-d", folder]  # fmt: skip
    run(download)
    [sdist] = Path(folder).glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(folder, filter="data")
    return sdist.with_name(sdist.name.removesuffix(".tar.gz"))


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    start: int = 0  # where this process's output begins in `log`, which earlier runs share

    @property
    def pid(self):
        return self.popen.pid

    def output(self):
        """What this process has printed (not what an earlier one of its name printed)."""
        with self.log.open("rb") as log:
            log.seek(self.start)
            return log.read().decode(errors="replace")

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name} (pid {self.pid}) did not print {text!r} within {timeout} s;"
            f" exit code {self.popen.poll()}\n{self.output()[-4000:]}"
        )

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop the process (SIGTERM: Celery's warm shutdown), then whatever is left of
        its process group (it leads its own): pool children, after a kill -9 of the parent."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        # Once our process is reaped, a live process with its PID is another's (PIDs wrap
        # around at 32768 here), and so is that process group: never signal it.
        reused = self.popen.returncode is not None and Path(f"/proc/{self.pid}").exists()
        if not reused:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(10)


@dataclass
class Project:
    """A generated project folder, run with `python` and extra environment variables."""

    path: Path
    python: Path = Path(PYTHON)
    env: dict = field(default_factory=dict)
    processes: list = field(default_factory=list)
    prefix: tuple = ()  # runs each command on a simulated host (support/hosts.py)

    def on(self, host):
        """This project as `host` runs it: same folder, environment and process list."""
        return dataclasses.replace(self, prefix=tuple(host.prefix))

    @property
    def slug(self):
        return self.path.name

    def environ(self, support=False):
        """The environment of the project's processes. With `support`, this repository is on
        PYTHONPATH too, after what `env` puts there: for `python -m support.MODULE` (drive.py,
        faults_drive.py, inproject.py), which -m runs with the working directory, the
        project's folder, first on sys.path."""
        # The project reads .env itself; only what a test sets goes on top. Our PYTHONPATH
        # (scripts/demo and bench/run name this repository, for support/) is not the project's.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VIRTUAL_ENV", "PYTEST")) and k != "PYTHONPATH"
        }
        env["PATH"] = f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env |= self.env
        if support:
            paths = [env.get("PYTHONPATH"), str(TEMPLATE)]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        return env

    def run(self, *args, timeout=300, support=False):
        env = self.environ(support)
        return run([*self.prefix, self.python, *args], cwd=self.path, env=env, timeout=timeout)

    def manage(self, *args, timeout=300):
        return self.run("manage.py", *args, timeout=timeout)

    def fill_expired(self, database, rows):
        """`rows` TaskResult rows from the year 2000, made by the database in one statement."""
        numbers = {
            "sqlite": f"(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            f"WHERE i < {rows}) SELECT i FROM n)",
            "postgresql": f"generate_series(1, {rows}) AS i",
        }[database]
        insert = (
            "INSERT INTO django_celery_results_taskresult (task_id, status, content_type, "
            "content_encoding, result, date_done, date_created, task_name, worker) "
            "SELECT 'expired-' || i, 'SUCCESS', 'application/json', 'utf-8', '5', "
            "'2000-01-01 00:00:00', '2000-01-01 00:00:00', 'demoapp.tasks.add', 'w@h' "
            f"FROM {numbers}"
        )
        code = f"from django.db import connection; connection.cursor().execute({insert!r})"
        self.manage("shell", "-c", code)

    def schedule_every_second(self, name):
        """A periodic task `name` in beat's database: `add(2, 3)` every second."""
        code = (
            "from django_celery_beat.models import IntervalSchedule, PeriodicTask\n"
            "every = IntervalSchedule.objects.create(every=1, period='seconds')\n"
            f"PeriodicTask.objects.create(name={name!r}, task='demoapp.tasks.add', "
            "args='[2, 3]', interval=every)"
        )
        self.manage("shell", "-c", code)

    def celery(self, *args, timeout=120):
        return self.run("-m", "celery", "-A", self.slug, *args, timeout=timeout)

    def drive(self, command, timeout=180):
        return json.loads(self.run(*DRIVE, self.slug, command, timeout=timeout, support=True))

    def faults(self, *args):
        """Run faults_drive.py in the project (see its docstring); its JSON answer."""
        args = [self.slug, *map(str, args)]
        out = self.run(*FAULTS_DRIVE, *args, timeout=FAULTS_TIMEOUT + 120, support=True)
        return json.loads(out)

    def send(self, count, kind="slow", ids="ids.txt", pause=0):
        """Send `count` idempotent tasks, appending their ids to the file `ids`."""
        return self.faults("send", kind, count, self.path / ids, pause)

    def wait_done(self, at_least="all", settle=False, ids="ids.txt", timeout=FAULTS_TIMEOUT):
        """Counts by state of the tasks in `ids`, once `at_least` of them succeeded, or once
        `timeout` seconds passed."""
        options = [*["--settle"] * settle, f"--timeout={timeout}"]
        outcome = self.faults("wait", self.path / ids, at_least, *options)
        if at_least != "all":
            assert outcome["done"] >= at_least, f"tasks stopped completing: {outcome}"
        return outcome

    def spawn(self, name, *args, support=False):
        """Run `python ARGS` in the background, logging to NAME.log in the project."""
        return self.launch(name, [self.python, *args], support)

    def launch(self, name, command, support=False):
        """Run `command` (a list) in the background in its own session, logging to NAME.log."""
        log = self.path / f"{name}.log"
        with log.open("ab") as out:
            start = out.tell()
            popen = subprocess.Popen(
                list(map(str, [*self.prefix, *command])),
                cwd=self.path,
                env=self.environ(support),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log, start)
        self.processes.append(process)
        return process

    def start(self, name, *args):
        """Start `celery -A slug ARGS` in the background."""
        return self.spawn(name, "-m", "celery", "-A", self.slug, *args)

    def start_worker(self, name="worker", *args):
        worker = self.start(name, "worker", "-l", "info", "-n", f"{name}@%h", *args)
        worker.wait_for("ready.")
        return worker

    def start_beat(self, name="beat"):
        # Look for schedule changes every second, not every 5: tests add periodic tasks.
        pidfile = self.path / f"{name}.pid"
        beat = self.start(name, "beat", "-l", "info", "--pidfile", pidfile, "--max-interval", "1")
        beat.wait_for("beat: Starting...")
        return beat

    def start_web(self, port):
        """Start `manage.py runserver` on 127.0.0.1:PORT in the background, as `web`."""
        web = self.spawn("web", "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload")
        web.wait_for("Quit the server with")
        return web

    def stop_all(self):
        for process in reversed(self.processes):
            process.stop()


def assert_project_checks_pass(project):
    """Django's checks, no missing migration, migrate, and the project's own tests."""
    project.manage("check", "--fail-level", "WARNING")
    project.manage("makemigrations", "--check", "--dry-run")
    project.manage("migrate", "--no-input")
    project.run("-m", "pytest", "-q", "-p", "no:cacheprovider")


def unit_command(project, unit, hostname=None, machine_id=None):
    """The ExecStart line of one of the project's systemd units (deploy/systemd/UNIT), as
    systemd runs it on a machine named `hostname` whose machine ID is `machine_id` (by default
    this machine's): this project's interpreter's folder for /srv/SLUG/.venv/bin, and the
    specifiers %H and %m filled in."""
    text = (project.path / "deploy" / "systemd" / unit).read_text()
    line = re.search(r"^ExecStart=(.*)$", text, re.M)[1]
    line = line.replace(f"/srv/{project.slug}/.venv/bin/", f"{project.python.parent}/")
    hostname = hostname or socket.gethostname()
    machine_id = machine_id or Path("/etc/machine-id").read_text().strip()
    return line.replace("%H", hostname).replace("%m", machine_id)


def pool_children(pid):
    """The PIDs of a process's children (a worker's pool processes)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def alive(pid, timeout=10):
    """Whether `pid` is still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


# The template as a git repository of its own, which cruft creates and updates projects from.

TEMPLATE_FILES = ("cookiecutter.json", "hooks", "{{cookiecutter.project_slug}}")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def tool(name):
    """A command-line tool installed beside this interpreter (tests/requirements.txt)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name)


def git(cwd, *args):
    return run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=os.environ | GIT_ENV)


def cruft(cwd, *args, check=True):
    proc = subprocess.run(
        [tool("cruft"), *args], cwd=cwd, env=os.environ | GIT_ENV, capture_output=True, text=True
    )
    if check:
        assert proc.returncode == 0, f"cruft {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def commit_all(folder, message):
    """Commit everything in `folder`, which becomes a git repository if it is none yet."""
    if not (folder / ".git").exists():
        git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "--allow-empty", "-m", message)


def commit_template(repo, commit=None):
    """Commit the template's files into the git repository `repo` (made if need be): as
    `commit` of this checkout's history holds them, or by default as they are on disk."""
    repo.mkdir(exist_ok=True)
    for path in map(repo.joinpath, TEMPLATE_FILES):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if commit:
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "template.tar"
            git(TEMPLATE, "archive", "-o", archive, commit, *TEMPLATE_FILES)
            with tarfile.open(archive) as files:
                files.extractall(repo, filter="data")
    else:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in TEMPLATE_FILES:
            if (TEMPLATE / name).is_dir():
                shutil.copytree(TEMPLATE / name, repo / name, ignore=ignore)
            else:
                shutil.copy2(TEMPLATE / name, repo / name)
    # Named in a file too, so that each commit changes something even where the template's
    # files do not: after a commit that changes nothing, cruft update does nothing ("already
    # up to date") and cruft check fails ("out of date").
    source = f"the template at {commit or 'the working tree'}"
    (repo / "source.txt").write_text(source + "\n")
    commit_all(repo, source)


def cruft_create(template, out):
    """The default project made by `cruft create` from the template repository into the
    folder `out`, committed as rendered in a git repository of its own: its folder."""
    out.mkdir(parents=True, exist_ok=True)
    cruft(out, "create", str(template), "--no-input", "--output-dir", str(out))
    project = out / "my_project"
    commit_all(project, "pristine render")
    return project


def task_events(logs, event="received"):
    """How many times each task was received (or succeeded), in these workers' logs."""
    found = Counter()
    for log in logs:
        found.update(re.findall(rf"Task \S+\[([0-9a-f-]+)\] {event}", log))
    return found


def report_fault(what, outcome, logs, recovered=None):
    """Print a fault test's FIGURES line from its wait_done() outcome and the workers' logs;
    return (lost, succeeded twice)."""
    again = sum(n - 1 for n in task_events(logs).values())
    twice = sum(n > 1 for n in task_events(logs, "succeeded").values())
    lost = outcome["sent"] - outcome["done"]
    took = "" if recovered is None else f", recovered in {recovered:.1f} s"
    print(
        f"FIGURES {what}: {outcome['sent']} sent, {outcome['done']} done, {lost} lost,"
        f" {again} delivered again, {twice} succeeded twice{took}; states {outcome['states']}"
    )
    return lost, twice
