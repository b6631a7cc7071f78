"""The peer rows: huey, django-q2, django-tasks-db and procrastinate on our rows' work.

Each peer gets its own venv from bench/peer/requirements-KEY.txt (its pins stay out of the
generated project, of the bench's .venv and of each other's way: each brings the Django or
psycopg it wants), its own folder in the run's work folder, and its worker started as its
docs recommend for one machine, with 2 workers (PEERS). bench/peer/client.py, run in the
peer's venv, sends `add` and reads each result where the peer stores it (bench/peer/
*_app.py). Per repeat: the worker tree's idle CPU, round trips, throughput and the CPU per
task of each process; once a run, for our rows too (through the same client:
bench/peer/celery_app.py): throughput with BACKLOG tasks waiting, the 50 ms asleep task,
round trips with IN_FLIGHT tasks sent together, throughput of SCALE tasks, the
read-modify-write counter, and the tasks a kill -9 of the worker loses.
"""

import json
import shutil
import signal
import sys
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from cpu import cpu_per_task, idle_cpu_pct

from support import servers
from support.project import Project, make_venv, run

PEER = Path(__file__).resolve().parent / "peer"
CLIENT = ("-m", "client")  # bench/peer/client.py, with PEER on PYTHONPATH and support=True
BACKLOG, QUICK_BACKLOG = 20_000, 2_000  # tasks waiting when the worker starts
WARMUP = 200  # results read before the backlog run's timing starts, as backlog_check's
SETTLE = 20  # seconds, after a restart and the peer's own redelivery delay, for the rest
NAPS, QUICK_NAPS = 400, 40  # 50 ms asleep each: at most 40 a second on 2 workers
IN_FLIGHT = (10, 100)  # tasks sent together (one at a time: the round trips of measure())
SCALE, QUICK_SCALE = 20_000, 2_000  # tasks sent at once, beside --tasks
# Ours in the peers table: the embedded default, and beside procrastinate our PostgreSQL
# rows; each with what its kill -9 check changes. Redis hands a dead worker's tasks out again
# once visibility_timeout has passed (600 s as generated, swept every 100 s): here 30 s,
# swept every second, so that the check waits for it as long as for procrastinate's.
REDIS_REDELIVERY = {"visibility_timeout": 30, "unacked_restore_interval": 1,
                    "unacked_restore_throttle": 1}  # fmt: skip
OURS = {
    "filesystem-db-sqlite": ({}, 0, ""),
    "filesystem-db-postgresql": ({}, 0, ""),
    "redis-db-postgresql": (
        {"CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(REDIS_REDELIVERY)}, 30,
        "the generated settings, but for CELERY_BROKER_TRANSPORT_OPTIONS="
        f"`{json.dumps(REDIS_REDELIVERY)}` (generated: visibility_timeout 600 s, twice the "
        "hard time limit), so that the kill -9 check waits for Redis' redelivery as long as "
        "for procrastinate's",
    ),
}  # fmt: skip
DJANGO = ["python", "-m", "django"]
MIGRATE = [*DJANGO, "migrate", "--no-input", "--run-syncdb"]  # syncdb: counter/, no migrations


@dataclass
class Peer:
    key: str  # --only, results.json, bench/peer/requirements-KEY.txt
    label: str
    app: str  # its module in bench/peer/: the task and the client's adapter
    worker: list  # the worker's command, in the peer's folder, its venv first on PATH
    ready: str  # what the worker's log says once it takes tasks
    config: str  # one line for the docs: how it is set up
    packages: tuple  # whose versions the report gives
    setup: tuple = ()  # commands run once before the first worker
    database: str = "sqlite"  # postgresql: a database on the bench's PostgreSQL server
    redeliver_s: float = 0  # how long the peer waits before a dead worker's tasks run again
    results: str = "read back"  # what the client reads for each task
    no_counter: str = ""  # why the read-modify-write counter is not run, if it is not


PEERS = [
    Peer("huey", "huey: SqliteHuey", "huey_app",
         ["python", "-m", "huey.bin.huey_consumer", "huey_app.huey", "-w", "2", "-k", "thread"],
         "Huey consumer started", "SqliteHuey (queue and results in one SQLite file, WAL, "
         "its defaults, so SQLite's synchronous=FULL: each commit on the disk, as ours); "
         "`huey_consumer -w 2 -k thread`: threads, huey's default worker type, its docs' "
         "choice for tasks that are not CPU-bound; results read with preserve=True",
         ("huey",), no_counter="not run: SqliteHuey gives its tasks no database to update "
         "in a transaction (no Django, no ORM)"),
    Peer("django-q2", "django-q2: ORM broker, SQLite", "djangoq_app", [*DJANGO, "qcluster"],
         "running.", "Django 5.2 on SQLite with the generated project's SQLite options (WAL, "
         "synchronous=FULL, IMMEDIATE, 20 s timeout); Q_CLUSTER as its ORM broker docs give "
         "it (orm default, timeout 90, retry 120, queue_limit 50, bulk 10), workers 2, "
         "save_limit 0 so no result is deleted before it is read; `manage.py qcluster`",
         ("django-q2", "django"), setup=(MIGRATE,),
         redeliver_s=120),
    Peer("django-tasks-db", "django-tasks-db: db_worker, SQLite", "dtasks_app",
         ["sh", "-c", "trap 'trap - TERM; kill 0' TERM; python -m django db_worker & "
          "python -m django db_worker & wait"],
         "Starting worker", "Django 5.2 with the django-tasks backport (Django 6's "
         "django.tasks), django_tasks_db.DatabaseBackend on SQLite with the generated "
         "project's SQLite options; two `manage.py db_worker` processes (each runs one task "
         "at a time), its defaults (polling every 1 s when idle)",
         ("django-tasks-db", "django-tasks", "django"),
         setup=(MIGRATE,)),
    Peer("procrastinate", "procrastinate: PostgreSQL", "procrastinate_app",
         ["python", "-m", "procrastinate", "--verbose", "--app=procrastinate_app.app",
          "worker", "--concurrency", "2"],
         "Starting worker", "PsycopgConnector on the bench's PostgreSQL, schema applied with "
         "`procrastinate schema --apply`; `procrastinate worker --concurrency 2` (LISTEN/"
         "NOTIFY, its defaults); after a kill, its docs' recipe retries stalled jobs (no "
         "heartbeat for 30 s)",
         ("procrastinate", "psycopg"),
         setup=(["python", "-m", "procrastinate", "--app=procrastinate_app.app", "schema",
                 "--apply"],),
         database="postgresql", redeliver_s=30,
         results="no result store: the job's status (succeeded) read back"),
]  # fmt: skip


def chosen(only):
    """The peers `--only` names ("peers": all of them); all of them without --only."""
    if not only or "peers" in only:
        return list(PEERS)
    return [p for p in PEERS if any(o in p.key for o in only)]


class Runner:
    """One queue to measure: its folder and venv (a Project), its worker, its client."""

    def __init__(self, project, app, launch, servers, redeliver_s=0, no_counter=""):
        self.project, self.app, self.launch, self.servers = project, app, launch, servers
        self.redeliver_s, self.no_counter, self.starts = redeliver_s, no_counter, count(1)

    def start(self, name):
        # A new log each time: the ready line of an earlier start is not this one's.
        return self.launch(f"{name}-{next(self.starts)}")

    def client(self, *args):
        out = self.project.run(*CLIENT, self.app, *map(str, args), timeout=900, support=True)
        return json.loads(out)


def peer_runner(bench, peer):
    folder = bench.work / "peers" / peer.key
    folder.mkdir(parents=True)
    requirements = ["-r", PEER / f"requirements-{peer.key}.txt"]
    python = make_venv(folder / "venv", sys.executable, requirements)
    env = {"PYTHONPATH": str(PEER), "PEER": peer.key, "PEER_DB": str(folder / "peer.sqlite3"),
           "DJANGO_SETTINGS_MODULE": "django_settings"}  # fmt: skip
    pids = {}  # the servers whose CPU counts: the database's, where it is one
    if peer.database == "postgresql":
        postgresql = bench.servers["postgresql"]
        env["PEER_DATABASE_URL"] = servers.create_database(postgresql, peer.key.replace("-", "_"))
        pids["database"] = [postgresql._pid()]
    project = Project(folder, python, env)
    bench.projects.append(project)
    for command in peer.setup:
        run(command, cwd=folder, env=project.environ())

    def launch(name):
        worker = project.launch(name, peer.worker)
        worker.wait_for(peer.ready)
        return worker

    return Runner(project, peer.app, launch, pids, peer.redeliver_s, peer.no_counter)


def our_runner(bench, v):
    """Variant `v` of the generated project, driven by the peers' client (celery_app.py)."""
    base = bench.project(v)
    settings, redeliver_s, _ = OURS[v.key]
    assert "BENCH_SETTINGS" not in base.env, "a peers row is the generated settings"
    env = base.env | settings | {
        "PYTHONPATH": f"{PEER}:{base.env['PYTHONPATH']}", "PEER_SLUG": base.slug,
        # The generated settings and, for the worker, the peers' nap task (celery_nap.py).
        "DJANGO_SETTINGS_MODULE": "bench_settings", "BENCH_BASE_SETTINGS": f"{base.slug}.settings",
        "BENCH_SETTINGS": json.dumps({"CELERY_IMPORTS": ["celery_nap"]}),
    }  # fmt: skip
    project = Project(base.path, base.python, env)
    bench.projects.append(project)
    shutil.rmtree(project.path / ".broker", ignore_errors=True)  # no earlier messages
    return Runner(project, "celery_app", project.start_worker, bench.server_pids(v), redeliver_s)


def versions(runner, packages):
    script = f"import json, importlib.metadata as m; print(json.dumps({{p: m.version(p) for p in {list(packages)}}}))"  # noqa: E501
    return json.loads(runner.project.run("-c", script))


def measure(runner, args):
    """One run on a fresh worker: its process tree's idle CPU, round trips, throughput."""
    worker = runner.start("worker")
    try:
        out = {"idle_cpu_pct": idle_cpu_pct(worker.pid, args.idle_seconds)}
        out |= runner.client("latency", args.samples)
        out |= cpu_per_task(lambda: runner.client("throughput", args.tasks), args.tasks,
                            worker.pid, runner.servers)  # fmt: skip
    finally:
        worker.stop()
    if out["stored"] < args.tasks:
        raise RuntimeError(f"{out['stored']} of {args.tasks} results could be read")
    return out


def drained(project, name, reader, start_worker):
    """Start `python READER` (it prints "reading", then its figures as one JSON line when
    it exits), then a worker with start_worker(): the reader's figures. The reader first:
    a fast worker would be past the warm-up before a reader started after it."""
    process = project.spawn(name, *reader, support=True)
    process.wait_for("reading")
    worker = start_worker()
    try:
        if process.popen.wait(900):
            raise RuntimeError(f"{name} failed: {process.output()[-600:]}")
    finally:
        worker.stop()
        process.stop()
    return json.loads(process.output().splitlines()[-1])


def backlog(runner, waiting, tasks):
    """Tasks per second over `tasks` results read after WARMUP others, with `waiting`
    more queued behind them when the worker starts (as bench.py's backlog_check)."""
    ids = runner.project.path / "backlog.json"
    runner.client("fill", WARMUP + tasks + waiting, ids)
    reader = (*CLIENT, runner.app, "drain", WARMUP, WARMUP + tasks)
    name = f"drain-{waiting}-{next(runner.starts)}"
    out = drained(runner.project, name, reader, lambda: runner.start("worker-backlog"))
    return {"waiting": waiting} | out


def workloads(runner, args):
    """On one fresh worker: the 50 ms asleep task's throughput, round trips with IN_FLIGHT
    tasks sent together, and the throughput of SCALE tasks sent at once."""
    worker = runner.start("worker-workloads")
    try:
        out = {"naps": attempt(runner.client, "naps", QUICK_NAPS if args.quick else NAPS)}
        for at_once in IN_FLIGHT:
            out[f"in_flight_{at_once}"] = attempt(runner.client, "inflight", at_once, args.samples)
        out["scale"] = attempt(runner.client, "throughput", QUICK_SCALE if args.quick else SCALE)
        return out
    finally:
        worker.stop()


def counter(runner, tasks):
    """`tasks` read-modify-write increments of one row on a fresh worker."""
    if runner.no_counter:
        return {"skipped": runner.no_counter}
    worker = runner.start("worker-counter")
    try:
        return runner.client("counter", tasks)
    finally:
        worker.stop()


def kill(runner, tasks):
    """`tasks` queued, a worker started, killed with -9 (its main process, then the rest
    of its process group) once a quarter of the results can be read, a worker started
    again: how many results can be read once the peer has had time to run the rest."""
    ids = runner.project.path / "kill.json"
    runner.client("fill", tasks, ids)
    worker = runner.start("worker-kill")
    try:
        runner.client("wait", ids, tasks // 4)
    finally:
        worker.stop(signal.SIGKILL)
    worker = runner.start("worker-restarted")
    try:
        out = runner.client("settle", ids, runner.redeliver_s + SETTLE)
    finally:
        worker.stop()
    return out | {"lost": out["sent"] - out["done"]}


def run_all(bench, peers, ours, results, args, say, save):
    """Every chosen peer, --repeat times, then the once-a-run checks, ours included;
    `ours`: the Variants of OURS chosen."""
    waiting = QUICK_BACKLOG if args.quick else BACKLOG
    results["peers_waiting"] = waiting
    entries = results.setdefault("peers", {})
    runners = {}
    for peer in peers:
        entry = entries[peer.key] = {"label": peer.label, "config": peer.config,
                                     "results": peer.results, "runs": []}  # fmt: skip
        try:
            say(f"peer {peer.key}: venv, setup")
            runners[peer.key] = peer_runner(bench, peer)
            entry["versions"] = versions(runners[peer.key], peer.packages)
        except Exception as error:  # noqa: BLE001 - a failure is a result too
            say(f"FAILED: {error}")
            entry["error"] = str(error)[-600:]
    checks = [(peer.key, runners[peer.key], entries[peer.key]) for peer in peers
              if peer.key in runners]  # fmt: skip
    for repeat in range(1, args.repeat + 1):
        for key, runner, entry in checks:
            say(f"run {repeat}/{args.repeat}: peer {key}")
            entry["runs"].append(attempt(measure, runner, args))
            save(results, args.out)
    for v in ours:
        entry = results["variants"][v.key]
        if OURS[v.key][2]:
            entry["peers_config"] = OURS[v.key][2]
        checks.append((v.key, our_runner(bench, v), entry))
    for key, runner, entry in checks:
        say(f"{key}: {waiting} tasks waiting; naps, in flight, at scale; the counter; kill -9")
        # Ours too: the same reader as the peers' (bench.py's own backlog runs are kept).
        entry["peers_backlog"] = {str(n): attempt(backlog, runner, n, args.tasks)
                                 for n in (0, waiting)}  # fmt: skip
        entry["workloads"] = attempt(workloads, runner, args)
        entry["counter"] = attempt(counter, runner, args.tasks)
        entry["kill"] = attempt(kill, runner, args.tasks)
        save(results, args.out)


def attempt(function, *args):
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - a failure is a result too
        return {"error": str(error)[-600:]}
