"""Benchmark projects generated from this template, on this machine: `bench/run --help`.

Generates a project with the default answers (and one with result_backend=django-cache),
installs their dependencies with uv, starts real Redis, PostgreSQL and RabbitMQ servers
(support/servers.py) and, for each variant below, a real worker (support/project.py);
support/inproject.py sends the tasks from inside the project's environment. Every figure is
the median of --repeat runs. Writes results.json, results.md and chart.png to --out.
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import peers
import report
from cookiecutter.main import cookiecutter
from cpu import cpu_per_task, idle_cpu_pct

from support import servers
from support.project import TEMPLATE, Project, make_venv, run
from support.receivers import OtlpReceiver, SentryReceiver

BENCH = Path(__file__).resolve().parent
INPROJECT = ("-m", "support.inproject")  # run inside a project, with support=True
PY_SPY = Path(sys.executable).with_name("py-spy")  # installed by bench/requirements.txt

# Changes to the generated settings, applied by bench_settings.py.
# The defaults before commit 867b2bf: with CELERY_DB_REUSE_MAX unset (0 here, as celery.py
# sets it only where the settings do not), Celery's Django fixup closes every database
# connection before and after each task.
LIBRARY_BACKEND = {"CELERY_RESULT_BACKEND": "django-db"}
PREVIOUS = {"CELERY_DB_REUSE_MAX": 0} | LIBRARY_BACKEND
# kombu's own filesystem transport on the folders the embedded broker uses, polling every
# 0.05 s as the generated settings did before the project's transport watched the folder.
KOMBU_TRANSPORT = {
    "CELERY_BROKER_TRANSPORT": "kombu.transport.filesystem:Transport",
    "CELERY_BROKER_TRANSPORT_OPTIONS": {
        "data_folder_in": "{BASE_DIR}/.broker/queue",
        "data_folder_out": "{BASE_DIR}/.broker/queue",
        "control_folder": "{BASE_DIR}/.broker/control",
        "store_processed": False,
        "polling_interval": 0.05,
    },
}
PREVIOUS_EMBEDDED = PREVIOUS | KOMBU_TRANSPORT
# cookiecutter-django's Celery settings (config/settings/base.py); everything else is
# Celery's default. Broker and results come from CELERY_BROKER_URL and CELERY_RESULT_BACKEND.
COOKIECUTTER_DJANGO = {
    "-CELERY_": None,
    "CELERY_TIMEZONE": "UTC",
    "CELERY_RESULT_EXTENDED": True,
    "CELERY_RESULT_BACKEND_ALWAYS_RETRY": True,
    "CELERY_RESULT_BACKEND_MAX_RETRIES": 10,
    "CELERY_ACCEPT_CONTENT": ["json"],
    "CELERY_TASK_SERIALIZER": "json",
    "CELERY_RESULT_SERIALIZER": "json",
    "CELERY_TASK_TIME_LIMIT": 300,
    "CELERY_TASK_SOFT_TIME_LIMIT": 60,
    "CELERY_WORKER_SEND_TASK_EVENTS": True,
    "CELERY_TASK_SEND_SENT_EVENT": True,
}
EARLY_ACK = {"CELERY_TASK_ACKS_LATE": False, "CELERY_TASK_REJECT_ON_WORKER_LOST": False}
# What huey's consumer does without (bench/peers.py): acknowledged before it runs, no STARTED
# state, a bare result, threads in one process (no hard time limit, no crash isolation).
AS_HUEY = EARLY_ACK | {
    "CELERY_TASK_TRACK_STARTED": False,
    "CELERY_RESULT_EXTENDED": False,
    "CELERY_WORKER_POOL": "threads",
}
NO_INOTIFY = {"CELERY_BROKER_TRANSPORT_OPTIONS.inotify": False}
# The embedded default as it was before flushing for power cuts: no fsync from Python, and
# SQLite's commits synced only at checkpoints. Measured to cost that guarantee; not safe.
UNFLUSHED = {
    "BENCH_UNFLUSHED": True,
    "DATABASES.default.OPTIONS.init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
# The observability options, each measured on a project generated with it alone, switched on
# as a production deployment would: Sentry and OpenTelemetry report to local receivers in
# this process (support/receivers.py), the worker serves its metrics.
OBSERVABILITY = {  # key: (option, label, environment)
    "json-logs": ("use_json_logs", "JSON logs", {}),
    "sentry": ("use_sentry", "Sentry (SENTRY_DSN set, no tracing)", {}),
    "prometheus": ("use_prometheus", "Prometheus metrics (--metrics-port)", {}),
    "opentelemetry": ("use_opentelemetry", "OpenTelemetry, every trace kept", {}),
    "opentelemetry-sampled": (
        "use_opentelemetry",
        "OpenTelemetry, one trace in ten kept",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    ),
}


@dataclass
class Variant:
    key: str  # short name: logs, results.json, --only
    label: str
    broker: str  # filesystem, redis, rabbitmq
    results: str  # django-db, django-cache, redis
    database: str = "sqlite"  # sqlite, postgresql
    settings: dict = field(default_factory=dict)  # on top of the generated ones
    group: str = "matrix"  # matrix, side, candidate
    idle: bool = False  # also measure the idle worker's CPU
    restart: bool = False  # also restart PostgreSQL under it: are results still stored?
    option: str = ""  # generated with this cookiecutter option "y" (OBSERVABILITY)
    env: dict = field(default_factory=dict)  # for its processes


def variants():
    matrix = [
        Variant(f"{broker}-{results.removeprefix('django-')}-{database}",
                f"{broker} + {results}, {name}", broker, results, database, settings)
        for broker in ("filesystem", "redis", "rabbitmq")
        for results, database, name, settings in (
            ("django-db", "sqlite", "SQLite", {}),
            ("django-db", "postgresql", "PostgreSQL", {}),
            ("django-cache", "sqlite", "SQLite", {}),
        )
    ]  # fmt: skip
    embedded, embedded_pg, redis_pg = matrix[0], matrix[1], matrix[4]
    # Idle CPU: the default, and our rows beside procrastinate in the peers' table.
    embedded.idle = embedded_pg.idle = redis_pg.idle = redis_pg.restart = True
    side = [
        Variant("a-bare", "(a) bare Celery: Redis + Redis results", "redis", "redis", "",
                group="side"),
        Variant("a-limit", "(a') limit: bare Celery, Redis + one upsert per state change into "
                "PostgreSQL", "redis", "upsert", "postgresql", group="side"),
        Variant("c-cookiecutter-django", "(c) cookiecutter-django's settings: Redis + Redis "
                "results", "redis", "redis", "postgresql", COOKIECUTTER_DJANGO, group="side"),
    ]  # fmt: skip

    def on(base, key, label, settings):
        return Variant(
            f"{base.key}+{key}", f"{base.label}: {label}", base.broker, base.results,
            base.database, settings, "candidate", idle=base is embedded, restart=base.restart,
        )  # fmt: skip

    no_checks = {"DATABASES.default.CONN_HEALTH_CHECKS": False}
    prefetch4 = {"CELERY_WORKER_PREFETCH_MULTIPLIER": 4}
    candidates = [
        on(redis_pg, "previous", "previous default, a new connection per task", PREVIOUS),
        on(redis_pg, "library", "django-celery-results' own backend (get_or_create, save)",
           LIBRARY_BACKEND),
        on(redis_pg, "nocheck", "no health checks", no_checks),
        on(redis_pg, "pool", "psycopg pool",
           {"DATABASES.default.CONN_MAX_AGE": 0, "DATABASES.default.OPTIONS.pool": True}),
        on(redis_pg, "nostarted", "no STARTED state (trade-off)",
           {"CELERY_TASK_TRACK_STARTED": False}),
        on(redis_pg, "nodebug", "DEBUG off", {"DEBUG": False}),
        on(redis_pg, "prefetch4", "prefetch 4 (trade-off)", prefetch4),
        on(redis_pg, "early-ack", "early acks (trade-off)", EARLY_ACK),
        on(embedded, "previous", "kombu's filesystem transport, a connection per task",
           PREVIOUS_EMBEDDED),
        on(embedded, "library", "django-celery-results' own backend (get_or_create, save)",
           LIBRARY_BACKEND),
        on(embedded, "kombu", "kombu's own filesystem transport (polling 0.05 s)",
           KOMBU_TRANSPORT),
        on(embedded, "age0", "a new SQLite connection per task (CONN_MAX_AGE 0)",
           {"DATABASES.default.CONN_MAX_AGE": 0}),
        on(embedded, "polling", "no inotify: the folder listed every 0.1 s", NO_INOTIFY),
        on(embedded, "unflushed", "no flushes, SQLite synchronous=NORMAL: loses tasks and "
           "results in a power cut (before 2026-12-07)", UNFLUSHED),
        on(embedded, "prefetch4", "prefetch 4 (trade-off)", prefetch4),
        on(embedded, "early-ack", "early acks (trade-off)", EARLY_ACK),
        on(embedded, "as-huey", "what huey's consumer gives up: early acks, no STARTED state, "
           "no extended result, threads (trade-off)", AS_HUEY),
    ]  # fmt: skip
    candidates += [
        replace(on(embedded, key, label, {}), option=option, env=env)
        for key, (option, label, env) in OBSERVABILITY.items()
    ]
    return matrix + side + candidates


# --- the run ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.servers, self.projects = {}, []
        self.options = {}  # option -> the project generated with it
        self.receivers = contextlib.ExitStack()

    def setup(self):
        """Two generated projects, one venv for both, the servers, the migrated databases."""
        say("generating projects, installing their dependencies with uv")
        self.db_path = generate(self.work / "db")
        self.cache_path = generate(self.work / "cache", result_backend="django-cache")
        (self.work / "bare").mkdir()
        for option in {option for option, _, _ in OBSERVABILITY.values()}:
            self.options[option] = generate(self.work / option, **{option: "y"})
        pyprojects = [self.db_path / "pyproject.toml"]
        pyprojects += [path / "pyproject.toml" for path in self.options.values()]
        extras = ["--extra", "redis", "--extra", "postgresql"]
        # psycopg-pool: for the "pool" candidate only.
        requirements = [arg for path in pyprojects for arg in ("-r", path)]
        self.python = make_venv(
            self.work / "venv", sys.executable, [*requirements, *extras, "psycopg-pool"]
        )
        self.sentry = self.receivers.enter_context(SentryReceiver())
        self.otlp = self.receivers.enter_context(OtlpReceiver())
        say("starting Redis, PostgreSQL and RabbitMQ")
        for kind in ("redis", "postgresql", "rabbitmq"):
            self.servers[kind] = getattr(servers, kind)(self.work / kind)
        self.pg_url = servers.create_database(self.servers["postgresql"], "bench")
        for results, database in (
            ("django-db", "sqlite"),
            ("django-db", "postgresql"),
            ("django-cache", "sqlite"),
        ):
            self.project(Variant("", "", "filesystem", results, database)).manage(
                "migrate", "--no-input"
            )
        self.project(Variant("", "", "filesystem", "django-cache")).manage("createcachetable")

    def project(self, v):
        """The project that runs variant `v`, with the environment that selects it."""
        env = {"PYTHONPATH": str(BENCH), "CELERY_BROKER_URL": self.broker_url(v.broker)}
        if v.database == "postgresql":
            env["DATABASE_URL"] = self.pg_url
        if v.results == "redis":  # Celery reads it from the environment, over the settings
            env["CELERY_RESULT_BACKEND"] = self.servers["redis"].url
        if v.results == "upsert":
            env["CELERY_RESULT_BACKEND"] = "bare:UpsertBackend"
            env["BARE_DATABASE_URL"] = self.pg_url
        if v.settings:
            env["DJANGO_SETTINGS_MODULE"] = "bench_settings"
            env["BENCH_BASE_SETTINGS"] = "my_project.settings"
            env["BENCH_SETTINGS"] = json.dumps(v.settings)
        if v.option == "use_sentry":
            env["SENTRY_DSN"] = self.sentry.dsn
        if v.option == "use_opentelemetry":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp.endpoint
        if v.option == "use_prometheus":
            env["WORKER_METRICS_PORT"] = f"127.0.0.1:{servers.free_port()}"
        env |= v.env
        path = self.cache_path if v.results == "django-cache" else self.db_path
        path = self.options.get(v.option, path)
        bare = v.key in ("a-bare", "a-limit")
        project = Project(self.work / "bare" if bare else path, self.python, env)
        self.projects.append(project)
        if v.option and not (path / "db.sqlite3").exists():
            project.manage("migrate", "--no-input")
        return project

    def broker_url(self, broker):
        return "filesystem://" if broker == "filesystem" else self.servers[broker].url

    def inproject(self, project, *args):
        out = project.run(*INPROJECT, project.slug, *map(str, args), timeout=900, support=True)
        return json.loads(out)

    def start_worker(self, v, project):
        if v.broker == "filesystem":  # no messages left over from an earlier variant
            shutil.rmtree(project.path / ".broker", ignore_errors=True)
            for folder in ("queue", "control"):  # kombu's own transport creates none
                (project.path / ".broker" / folder).mkdir(parents=True)
        return project.start_worker(f"worker-{v.key}")

    def server_pids(self, v):
        pids = {"database": [], "broker": []}
        if v.database == "postgresql" and v.results in ("django-db", "upsert"):
            pids["database"].append(self.servers["postgresql"]._pid())
        for kind in {v.broker, v.results} & {"redis", "rabbitmq"}:
            pids["broker"].append(self.servers[kind]._pid())
        return pids

    def measure(self, v):
        """One run of variant `v` on a fresh worker: [idle CPU,] latency, throughput."""
        project = self.project(v)
        worker = self.start_worker(v, project)
        try:
            out = {}
            if v.idle:
                out["idle_cpu_pct"] = idle_cpu_pct(worker.pid, self.args.idle_seconds)
            out |= self.checked(worker, project, "latency", self.args.samples)
            out |= cpu_per_task(
                lambda: self.checked(worker, project, "throughput", self.args.tasks),
                self.args.tasks, worker.pid, self.server_pids(v),
            )  # fmt: skip
            if out["stored"] < self.args.tasks:
                raise RuntimeError(f"{v.key}: {out['stored']} of {self.args.tasks} results stored")
            return out
        finally:
            worker.stop()

    def checked(self, worker, project, *args):
        """inproject(), failing with the worker's last words when the worker died."""
        try:
            return self.inproject(project, *args)
        except Exception as error:
            if worker.popen.poll() is None:
                raise
            lines = worker.output().strip().splitlines()
            last = next(
                (line for line in reversed(lines) if "Unrecoverable error" in line), lines[-1]
            )
            raise RuntimeError(
                f"the worker died during {args[0]}: {last} (...) {lines[-1]}"
            ) from error

    def backlog_check(self, v, waiting, tasks=2000, warmup=200):
        """Throughput over `tasks` tasks taken from the queue after `warmup` others, with
        `waiting` more queued behind them when the worker starts; then one process's cost
        to list the queue folder and to claim a message, with the rest still waiting."""
        project = self.project(v)
        shutil.rmtree(project.path / ".broker", ignore_errors=True)
        self.inproject(project, "fill", warmup + tasks + waiting)
        reader = (*INPROJECT, project.slug, "drain", warmup, warmup + tasks)
        worker = f"worker-{v.key}-backlog-{waiting}"
        out = peers.drained(
            project, f"drain-{waiting}", reader, lambda: project.start_worker(worker)
        )
        return out | self.inproject(project, "claim", min(1000, waiting))

    def cleanup_check(self):
        """Beat's cleanup of --expired expired results, SQLite, run by a default worker that
        runs `add` tasks sent one at a time meanwhile (support/drive.py): their round trips."""
        path = self.work / "cleanup" / "my_project"
        if not path.exists():
            generate(path.parent)
        shutil.rmtree(path / ".broker", ignore_errors=True)
        for leftover in path.glob("db.sqlite3*"):
            leftover.unlink()
        project = Project(path, self.python)
        self.projects.append(project)
        project.manage("migrate", "--no-input")
        project.fill_expired("sqlite", self.args.expired)
        worker = project.start_worker("worker")
        try:
            outcome = project.drive("cleanup", timeout=1800)
        finally:
            worker.stop()
        if (outcome["cleanup"], outcome["left"]) != ("SUCCESS", 0):
            raise RuntimeError(f"the cleanup did not delete every expired result: {outcome}")
        return outcome

    def restart_check(self, v, tasks=20):
        """Of `tasks` tasks sent just after PostgreSQL restarted under a running worker,
        how many results are stored within 20 s?"""
        project = self.project(v)
        worker = self.start_worker(v, project)
        try:
            self.inproject(project, "throughput", tasks)  # both pool processes are connected
            self.servers["postgresql"].restart()
            return {
                "stored": self.inproject(project, "throughput", tasks, 20)["stored"],
                "sent": tasks,
            }
        finally:
            worker.stop()

    def cache_check(self):
        """Of --tasks results stored by django-cache as generated, how many can be read?"""
        v = Variant("redis-cache-sqlite", "", "redis", "django-cache")
        project = self.project(v)
        worker = self.start_worker(v, project)
        try:
            out = self.inproject(project, "throughput", self.args.tasks, 30)
            return {"stored": out["stored"], "sent": self.args.tasks}
        finally:
            worker.stop()

    def profile(self, v):
        """py-spy on the worker's main and pool processes during one throughput run. With a
        database server, waiting for its answers is time spent too: samples include waits."""
        waits = ["--idle"] if v.database == "postgresql" else []
        project = self.project(v)
        worker = self.start_worker(v, project)
        raw = self.args.out / f"profile-{v.key}.txt"
        try:
            self.inproject(project, "throughput", 100)  # connected, warm
            with (self.args.out / f"profile-{v.key}.log").open("w") as log:
                spy = subprocess.Popen(
                    [PY_SPY, "record", "--pid", str(worker.pid), "--subprocesses", *waits,
                     "--rate", "200", "--format", "raw", "--output", raw],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
                try:
                    time.sleep(2)  # attached to every process
                    self.inproject(project, "throughput", self.args.tasks)
                finally:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
                    spy.wait(60)
        finally:
            worker.stop()
        return summarize_profile(raw, main=not waits)

    def first_result(self):
        """From `cookiecutter --no-input` to the first result stored, embedded default, by step."""
        make_venv(self.work / "warm", sys.executable, editable=self.db_path)  # the cache is warm
        folder = self.work / f"first-{time.monotonic_ns()}"
        steps, clock = {}, time.perf_counter()

        def step(name):
            nonlocal clock
            steps[name], clock = time.perf_counter() - clock, time.perf_counter()

        run([Path(sys.executable).with_name("cookiecutter"), "--no-input", TEMPLATE, "-o", folder])
        step("cookiecutter --no-input")
        path = folder / "my_project"
        # As uv installs by default, not compiled: each module is compiled on first import.
        python = make_venv(path / ".venv", sys.executable, editable=path, compiled=False)
        project = Project(path, python)
        self.projects.append(project)
        step("uv venv + install the project")
        project.manage("migrate", "--no-input")
        step("manage.py migrate")
        project.start_worker("worker")
        step("worker started (ready)")
        self.inproject(project, "first")
        step("first task sent, its result read from the database")
        project.stop_all()
        steps["total"] = sum(steps.values())
        return steps

    def stop(self):
        for project in self.projects:
            project.stop_all()
        for server in self.servers.values():
            server.stop()
        self.receivers.close()


def generate(folder, **answers):
    folder.mkdir(parents=True)
    context = {"no_input": True, "output_dir": str(folder), "extra_context": answers}
    return Path(cookiecutter(str(TEMPLATE), **context))


def save(results, out):
    (out / "results.json").write_text(json.dumps(results, indent=1))


def say(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# Where the worker's time goes: each py-spy sample counts for the first bucket with a mark in
# one of its frames ("function (file"). The pool processes run the tasks:
POOL_BUCKETS = [
    ("waiting for a task (idle)", ("_recv (billiard/connection.py",)),
    ("opening a database connection", ("BaseDatabaseWrapper.connect (django",)),
    ("closing connections (Celery's Django fixup)", ("_close_database (celery/fixups",)),
    ("close_old_connections (per task)", ("close_old_connections (django",)),
    ("connection health check (SELECT 1)", ("is_usable (django",)),
    ("waiting for the database's answers", ("Connection.wait (psycopg",)),
    ("storing the result: ORM and driver, in Python", ("store_result (django_celery_results",)),
    ("logging", ("(logging/",)),
    ("the task itself", ("add (demoapp/tasks.py", "add (bare.py")),
    ("the rest: Celery's tracing, the pool's messages", ("",)),
]
# ... and the main process takes messages from the broker and hands them to the pool:
MAIN_BUCKETS = [
    (
        "filesystem transport: listing the queue folder, reading files",
        ("Channel._get (", "filesystem.py"),  # kombu's, or the generated broker.py
    ),
    ("acknowledging messages", ("basic_ack (kombu",)),
    ("logging", ("(logging/",)),
    ("handing tasks to the pool, reading their results", ("(billiard/", "asynpool.py")),
    ("the rest of the worker's loop", ("",)),
]
# Helper threads of the main process that py-spy samples while they wait (innermost frame).
MAIN_WAITS = ("_poll (billiard", "wait (threading.py", "Timer.run (celery",
              "Handler.body (billiard", "Supervisor.body (billiard", "get (queue.py")  # fmt: skip


def summarize_profile(raw, main=True):
    """Shares of the pool processes' busy time (not waiting for a task) by POOL_BUCKETS and,
    when py-spy left out idle samples, of the main process's by MAIN_BUCKETS."""
    counts = {"pool": {}, "main": {}}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        part = "pool" if len(frames) > 1 and frames[1].startswith("process ") else "main"
        if part == "main" and any(mark in frames[-1] for mark in MAIN_WAITS):
            continue
        buckets = POOL_BUCKETS if part == "pool" else MAIN_BUCKETS
        name = next(n for n, marks in buckets if any(m in f for m in marks for f in frames))
        counts[part][name] = counts[part].get(name, 0) + int(count)
    counts["pool"].pop(POOL_BUCKETS[0][0], None)
    out = {}
    for part, buckets in (("pool", POOL_BUCKETS), ("main", MAIN_BUCKETS)):
        busy = sum(counts[part].values())
        if busy and (part == "pool" or main):
            shares = {
                n: round(100 * counts[part][n] / busy, 1) for n, _ in buckets if n in counts[part]
            }
            out[part] = {"busy_samples": busy, "shares_pct": shares}
    return out


def machine(python):
    """What the figures came from."""
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?"
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    packages = ["celery", "kombu", "django", "django-celery-results", "psycopg", "redis"]
    script = f"from importlib.metadata import version; print(*map(version, {packages}))"
    versions = dict(zip(packages, run([python, "-c", script]).split(), strict=True))
    commands = {
        "Redis": ["redis-server", "--version"],
        "PostgreSQL": ["postgres", "--version"],
        "RabbitMQ": ["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
    }
    server_versions = {}
    for name, (program, *args) in commands.items():
        words = run([servers.binary(program), *args]).split()
        server_versions[name] = next(
            w.removeprefix("v=") for w in words if w[:1].isdigit() or w[:2] == "v="
        )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory),
        "os": platform.platform(),
        "python": run([python, "-c", "import platform; print(platform.python_version())"]).strip(),
        "packages": versions,
        "servers": server_versions,
    }


def parse():
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results" / stamp,
        help="folder for the results (default: bench/results/TIMESTAMP)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement (default 3)"
    )
    parser.add_argument(
        "--tasks", type=int, default=2000, help="tasks per throughput run (default 2000)"
    )
    parser.add_argument(
        "--samples", type=int, default=100, help="round trips per latency run (default 100)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=30, help="idle CPU window (default 30)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=100_000,
        help="tasks waiting in the embedded broker's backlog run (default 100000)",
    )
    parser.add_argument(
        "--expired",
        type=int,
        default=2_000_000,
        help="expired results for beat's cleanup run (default 2000000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="for development: 1 run, 200 tasks, 20 round trips, 3 s idle, backlog 5000, "
        "100000 expired results",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="TEXT",
        help="only the variants and peers whose key contains TEXT (or is KEY, for =KEY), "
        "and (a); 'peers': huey, django-q2, django-tasks-db, procrastinate and our rows "
        "beside them",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="skip the peers (about 40 minutes): --docs then leaves their table as it is",
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help="also put the figures in docs/performance.md and its chart",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (projects, logs)")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write the tables and the chart from a results.json",
    )
    args = parser.parse_args()  # fmt: skip
    if args.quick:
        args.repeat, args.tasks, args.samples, args.idle_seconds = 1, 200, 20, 3
        args.backlog, args.expired = 5000, 100_000
    args.out = args.out.resolve()
    return args


def main():
    args = parse()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        print(report.write(json.loads(args.report.read_text()), args.out, args.docs))
        return
    # Python caches compiled modules unless told not to; some machines tell it not to (this
    # one did), which has every process compile Django again. Measure the usual case.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops everything
    started = time.monotonic()
    chosen_peers = [] if args.no_peers else peers.chosen(args.only)
    if args.docs and args.only and not chosen_peers:
        raise SystemExit("bench/run: --docs with --only writes only the peers' table: name a peer")
    chosen = [
        v
        for v in variants()
        if v.key == "a-bare"
        or not args.only
        or any(v.key == o[1:] if o.startswith("=") else o in v.key for o in args.only)
        or (chosen_peers and v.key in peers.OURS)
    ]
    now = datetime.now(timezone.utc)  # noqa: UP017 - datetime.UTC is Python 3.11+
    results = {
        "started": now.strftime("%Y-%m-%d %H:%M UTC"),
        "load": [os.getloadavg()[0]],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "variants": {v.key: {"label": v.label, "group": v.group, "broker": v.broker, "runs": []}
                     for v in chosen},
    }  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    bench, done = Bench(args, work), False
    try:
        bench.setup()
        results["machine"] = machine(bench.python)
        say("time to first result")
        results["first_result"] = [bench.first_result() for _ in range(args.repeat)]
        for repeat in range(1, args.repeat + 1):
            for v in chosen:
                say(f"run {repeat}/{args.repeat}: {v.key}")
                try:
                    results["variants"][v.key]["runs"].append(bench.measure(v))
                except Exception as error:  # noqa: BLE001 - a failure is a result too
                    say(f"FAILED: {error}")
                    results["variants"][v.key]["runs"].append({"error": str(error)[-600:]})
                save(results, args.out)  # so far: a crash of the run keeps it
        for v in (v for v in chosen if v.key == report.GENERATED["embedded"]):
            for repeat in range(1, args.repeat + 1):
                for waiting in (0, args.backlog):
                    say(f"run {repeat}/{args.repeat}: {v.key} with {waiting} tasks waiting")
                    results["variants"][v.key].setdefault("backlog", {}).setdefault(
                        str(waiting), []
                    ).append(peers.attempt(bench.backlog_check, v, waiting))
        if any(v.key == report.GENERATED["embedded"] for v in chosen):
            for repeat in range(1, args.repeat + 1):
                say(f"run {repeat}/{args.repeat}: beat's cleanup of {args.expired:,} results")
                results.setdefault("cleanup", []).append(peers.attempt(bench.cleanup_check))
        for v in (v for v in chosen if v.restart):
            say(f"PostgreSQL restart under {v.key}")
            results["variants"][v.key]["restart"] = bench.restart_check(v)
        if chosen_peers:
            ours = [v for v in chosen if v.key in peers.OURS]
            peers.run_all(bench, chosen_peers, ours, results, args, say, save)
        say("django-cache as generated")
        results["cache_check"] = bench.cache_check()
        results["profiles"] = {}
        for v in chosen:
            if not args.no_profile and v.key in {
                *report.PREVIOUS.values(),
                *report.GENERATED.values(),
            }:
                say(f"profiling {v.key}")
                results["profiles"][v.label] = bench.profile(v)
        results["load"].append(os.getloadavg()[0])
        done = True
    finally:
        bench.stop()
        if done and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"work folder kept: {work}")
    results["seconds"] = time.monotonic() - started
    save(results, args.out)
    print(report.write(results, args.out, args.docs))
    say(
        f"done in {results['seconds'] / 60:.1f} min: {args.out}/results.md, chart.png, results.json"
    )


if __name__ == "__main__":
    main()
