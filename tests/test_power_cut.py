"""A power cut on the embedded default: every task whose delay() returned is done afterwards.

The broker folder and the SQLite database live on support/lazyfs.py, a FUSE filesystem that
keeps apart every write and every name not yet flushed, and throws them away when the power
is cut. `-m power_cut` runs that test alone (it needs root, /dev/fuse and Debian's fuse3,
which scripts/install-servers installs). A cheaper check of the same promise, the order of
the system calls of one publish, runs with strace.
"""

import contextlib
import os
import re
import shutil
import signal

import pytest

from support.lazyfs import Mount
from support.project import run

SENT = 200
BATCH = 40  # tasks sent at a time while the worker runs
BATCHES = 3  # each done before the next is sent; then one more, and the rest while it stalls
RENAME = re.compile(r'rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"')
CODE = "from demoapp.tasks import add; add.delay(1, 1); import os; os.write(1, b'RETURNED')"


def system_calls(trace):
    """The calls of an `strace -f` output that matter here, in order: ("flush", path),
    ("rename", old, new), ("returned",)."""
    files, pending, calls = {}, {}, []
    for line in trace.splitlines():
        pid, _, call = line.partition(" ")
        call = call.strip()
        if call.endswith("<unfinished ...>"):
            pending[pid] = call.removesuffix("<unfinished ...>")
            continue
        if resumed := re.match(r"<\.\.\. \w+ resumed>(.*)", call):
            call = pending.pop(pid, "") + resumed[1]
        if opened := re.match(r'openat\(AT_FDCWD, "([^"]+)",.*\) = (\d+)$', call):
            files[opened[2]] = opened[1]
        elif flushed := re.match(r"f(?:data)?sync\((\d+)\) += 0$", call):
            calls.append(("flush", files.get(flushed[1])))
        elif renamed := RENAME.match(call):
            calls.append(("rename", renamed[1], renamed[2]))
        elif call.startswith('write(1, "RETURNED"'):
            calls.append(("returned",))
    return calls


def test_publishing_flushes_the_message_then_its_name(bake, tmp_path):
    """strace of add.delay(): the message file's data is flushed before the rename that
    names it, and its folder after the rename, both before delay() returns."""
    strace = shutil.which("strace")
    assert strace, "strace not found: run scripts/install-servers as root"
    project = bake(use_celery_beat="n")
    trace = tmp_path / "strace.txt"
    run([strace, "-f", "-qq", "-o", trace, "-e", "trace=openat,fsync,fdatasync,rename,renameat,"
         "renameat2,write", project.python, "manage.py", "shell", "-c", CODE],
        cwd=project.path, env=project.environ())  # fmt: skip
    calls = system_calls(trace.read_text())
    [message] = [c for c in calls if c[0] == "rename" and c[2].endswith(".celery.msg")]
    old, new = message[1:]
    renamed, returned = calls.index(message), calls.index(("returned",))
    assert ("flush", old) in calls[:renamed], f"{old} renamed before its data was flushed"
    after = calls[renamed:returned]
    assert ("flush", os.path.dirname(new)) in after, "delay() returned before the folder's flush"


@contextlib.contextmanager
def mounted(project, mountpoint, disk):
    """`disk` on LazyFS at `mountpoint`; the project's processes are killed (as a power cut
    would) before it is unmounted, whatever happens."""
    with Mount(mountpoint, disk, project.path / "lazyfs.log") as mount:
        try:
            yield mount
        finally:
            for process in project.processes:
                process.stop(signal.SIGKILL)


def on_disk(disk):
    """Message files that survived: waiting, and claimed by a process."""
    queue = disk / "broker" / "queue"
    return len(list(queue.glob("*.msg"))), len(list(queue.glob("*.claim")))


@pytest.mark.power_cut
def test_a_power_cut_loses_no_task(bake, tmp_path):
    """A worker runs tasks sent in batches, each sent once the last is done; it stalls
    (SIGSTOP) amid a fourth batch, a last one is sent, and as soon as the last add.delay()
    returns the power is cut: every process killed, every change not flushed thrown away.
    After the reboot a worker runs what is left: every task sent has its result. On the
    disk no message left the queue unclaimed, and none was acknowledged before its result."""
    assert os.path.exists("/dev/fuse") and shutil.which("fusermount3"), (
        "FUSE is missing: run scripts/install-servers as root"
    )
    project = bake(use_celery_beat="n")
    disk, mountpoint = tmp_path / "disk", tmp_path / "mnt"
    disk.mkdir()
    project.env["DATABASE_URL"] = f"sqlite:///{disk}/db.sqlite3"
    project.manage("migrate", "--no-input")  # on the disk before the cut: all durable
    project.env |= {
        "DATABASE_URL": f"sqlite:///{mountpoint}/db.sqlite3",
        "CELERY_BROKER_URL": f"filesystem://{mountpoint}/broker",
    }
    with mounted(project, mountpoint, disk) as mount:
        worker = project.start_worker("worker", "--concurrency", 2)
        for _ in range(BATCHES):
            project.send(BATCH, "quick")
            project.wait_done()  # results stored, messages acknowledged
        project.send(BATCH, "quick")
        os.killpg(worker.pid, signal.SIGSTOP)  # its pool too, amid the tasks it claimed
        project.send(SENT - (BATCHES + 1) * BATCH, "quick")
        worker.stop(signal.SIGKILL)
        # From its log: a process reading the database now would be its last one, and
        # SQLite would checkpoint it on closing, flushing what the cut should test.
        seen = len(set(re.findall(r"Task \S+\[([0-9a-f-]+)\] succeeded", worker.output())))
        cut = mount.cut()
    waiting, claimed = on_disk(disk)
    with mounted(project, mountpoint, disk):
        kept = project.wait_done(at_least=0)["done"]
        project.start_worker("rebooted", "--concurrency", 2)
        outcome = project.wait_done(settle=True)
    lost = outcome["sent"] - outcome["done"]
    print(f"FIGURES power cut: {outcome['sent']} sent, {seen} done before the cut, which threw "
          f"away {len(cut['lost'])} new and {len(cut['changed'])} changed files; after it "
          f"{kept} results, {waiting} messages waiting and {claimed} claimed; "
          f"{outcome['done']} done, {lost} lost")  # fmt: skip
    assert lost == 0, outcome
