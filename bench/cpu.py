"""CPU time from /proc: of process trees, single processes, the machine; shared by
bench.py and peers.py."""

import os
import resource
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _processes():
    """{pid: (ppid, its own CPU seconds, its waited-for children's CPU seconds)}."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            utime, stime, cutime, cstime = map(int, fields[11:15])
            table[int(entry.name)] = (
                int(fields[1]),
                (utime + stime) / TICK,
                (cutime + cstime) / TICK,
            )
    return table


def cpu_seconds(trees, alone):
    """CPU seconds used so far by each group of process trees ({name: [root pids]}) and by
    each single process ({name: pid})."""
    table = _processes()
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    totals = {name: (table[pid][1] if pid in table else 0.0) for name, pid in alone.items()}
    for name, roots in trees.items():
        seen, stack = set(), [pid for pid in roots if pid in table]
        while stack:
            pid = stack.pop()
            if pid not in seen:
                seen.add(pid)
                stack += children.get(pid, [])
        totals[name] = sum(table[pid][1] + table[pid][2] for pid in seen)
    return totals


def machine_busy_seconds():
    """CPU seconds the whole machine has been busy, all cores together."""
    user, nice, system, _idle, _iowait, *rest = map(
        int, Path("/proc/stat").read_text().split()[1:11]
    )
    return (user + nice + system + sum(rest[:3])) / TICK


def children_cpu():
    """CPU seconds of this process's finished children (such as the in-project runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_per_task(call, tasks, worker_pid, servers):
    """Run call(), a client that sends `tasks` tasks and returns its figures with its own
    CPU seconds (client_cpu_s); its figures with the CPU milliseconds per task of each part
    (main: the worker's main process; pool: the rest of the worker's process tree; each of
    `servers`, {name: [root pids]}; client) and other_cores: what else the machine did
    meanwhile (other programs, the client's start-up), in cores."""
    trees, alone = {"pool": [worker_pid]} | servers, {"main": worker_pid}
    before, busy = cpu_seconds(trees, alone), machine_busy_seconds()
    children, started = children_cpu(), time.monotonic()
    out = call()
    used = {k: cpu - before[k] for k, cpu in cpu_seconds(trees, alone).items()}
    used["pool"] -= used["main"]  # the worker's whole tree, less its main process
    used["client"] = out.pop("client_cpu_s")  # while sending and waiting
    out["cpu_ms_per_task"] = {k: 1000 * s / tasks for k, s in used.items()}
    ours = sum(used.values()) - used["client"] + children_cpu() - children
    out["other_cores"] = (machine_busy_seconds() - busy - ours) / (time.monotonic() - started)
    return out


def idle_cpu_pct(pid, seconds):
    """Percent of one core the process tree of `pid` used over `seconds`, after 1 s of
    start-up."""
    time.sleep(1)
    before, started = cpu_seconds({"worker": [pid]}, {}), time.monotonic()
    time.sleep(seconds)
    used = cpu_seconds({"worker": [pid]}, {})["worker"] - before["worker"]
    return 100 * used / (time.monotonic() - started)
