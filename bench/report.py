"""Tables, chart and target verdicts from a benchmark's results.json (see bench/bench.py)."""

import shutil
import statistics
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
# --docs replaces what is between these lines: the full run's tables, then the peers' table.
DOC_START, DOC_END = "<!-- bench:start -->", "<!-- bench:end -->"
PEERS_START, PEERS_END = "<!-- peers:start -->", "<!-- peers:end -->"

CPU_PARTS = {
    "main": "worker main process",
    "pool": "worker pool processes",
    "database": "database server",
    "broker": "broker server",
    "client": "client (sender)",
}
# Per target: the variants with the previous defaults, as generated, and the candidate closest
# to the target that keeps every guarantee (late acks, stored results,
# STARTED reported).
PREVIOUS = {"embedded": "filesystem-db-sqlite+previous", "redis-pg": "redis-db-postgresql+previous"}
GENERATED = {"embedded": "filesystem-db-sqlite", "redis-pg": "redis-db-postgresql"}
BEST = {"embedded": "filesystem-db-sqlite", "redis-pg": "redis-db-postgresql+nodebug"}
SIDE = {
    "a-bare": None,
    "a-limit": None,
    "filesystem-db-sqlite": "(b) generated default, embedded: filesystem + django-db, SQLite",
    "redis-db-postgresql": "(b) generated defaults moved to Redis + django-db, PostgreSQL",
    "c-cookiecutter-django": None,
}
FIGURES = ("p50_ms", "p95_ms", "tasks_per_s", "idle_cpu_pct", "other_cores")


def median(values):
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "–" if value is None else f"{value:,.{digits}f}"


def summarize(runs):
    """The median of each figure over the repeats that did not fail, and the throughput's range."""
    runs = [r for r in runs if "error" not in r]
    if not runs:
        return dict.fromkeys(FIGURES) | {
            "tasks_per_s_range": (None, None),
            "cpu_ms_per_task": dict.fromkeys(CPU_PARTS),
        }
    out = {k: median([r[k] for r in runs if k in r]) for k in FIGURES}
    rates = [r["tasks_per_s"] for r in runs]
    out["tasks_per_s_range"] = (min(rates), max(rates))
    out["cpu_ms_per_task"] = {
        k: median([r["cpu_ms_per_task"].get(k, 0) for r in runs if "cpu_ms_per_task" in r])
        for k in CPU_PARTS
    }
    return out


def ratio(x, y, digits=2):
    return "–" if x is None or not y else f"{x / y:.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def cpu_split(s):
    return " / ".join(fmt(s["cpu_ms_per_task"][k], 2) for k in CPU_PARTS)


def rate(s):
    low, high = s["tasks_per_s_range"]
    return f"{fmt(s['tasks_per_s'])} ({fmt(low)}–{fmt(high)})"


def machine_line(m):
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    servers = ", ".join(f"{k} {v}" for k, v in m["servers"].items())
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"Python {m['python']}; {packages}; {servers}"
    )


def markdown(report, peers=True):
    """results.md: how and where it ran, then one table per question (with `peers`, the
    peers' too), then the targets."""
    by, args = report["variants"], report["args"]
    a = by["a-bare"]["summary"]
    others = [r["other_cores"] for e in by.values() for r in e["runs"] if "other_cores" in r]
    lines = [
        f"Run {report['started']} on: {machine_line(report['machine'])}.",
        "",
        f"Medians of {args['repeat']} runs. Throughput: {args['tasks']} `add` tasks sent at once, "
        f"until every result is stored. Latency: {args['samples']} round trips one at a time, each "
        "after a random pause of up to 0.1 s, results polled every 5 ms. Worker concurrency: the "
        f"default (CPUs = {report['machine']['cores']}), `--loglevel INFO`. CPU ms per task, by "
        "process: " + " / ".join(CPU_PARTS.values()) + ". Other work on the machine during the "
        f"throughput runs: median {fmt(median(others), 2)} cores, max "
        f"{fmt(max(others, default=None), 2)}; load average {report['load'][0]:.2f} before "
        f"the run, {report['load'][-1]:.2f} after.",
        "",
        "#### Time to first result (embedded default, uv cache warm)",
        "",
    ]
    first = report["first_result"]
    lines += table(
        ["step", "seconds"],
        [(name if name != "total" else "**total**", fmt(median([f[name] for f in first]), 2))
         for name in first[0]],
    )  # fmt: skip
    lines += ["", "#### Brokers × result backends, generated defaults", ""]
    lines += table(
        ["broker", "results", "p50 ms", "p95 ms", "tasks/s (range)", "CPU ms/task"],
        [(e["broker"], e["label"].split(" + ", 1)[1], fmt(e["summary"]["p50_ms"], 1),
          fmt(e["summary"]["p95_ms"], 1), rate(e["summary"]), cpu_split(e["summary"]))
         for e in by.values() if e["group"] == "matrix"],
    )  # fmt: skip
    if "cache_check" in report:
        kept = report["cache_check"]
        lines += ["", f"django-cache as generated: {kept['stored']} of {kept['sent']} results "
                  "could be read back (Redis broker)."]  # fmt: skip
    lines += ["", "#### Side by side, ratios to (a)", ""]
    lines += table(
        ["configuration", "p50 ms", "p95 ms", "tasks/s (range)", "tasks/s ÷ (a)", "p50 ÷ (a)",
         "CPU ms/task"],
        [(name or by[key]["label"], fmt(s["p50_ms"], 1), fmt(s["p95_ms"], 1), rate(s),
          ratio(s["tasks_per_s"], a["tasks_per_s"]), ratio(s["p50_ms"], a["p50_ms"], 1),
          cpu_split(s))
         for key, name in SIDE.items() if key in by for s in [by[key]["summary"]]],
    )  # fmt: skip
    lines += ["", "#### Candidate changes to the generated defaults", ""]
    rows = []
    for key, e in by.items():
        if e["group"] == "candidate" or key in GENERATED.values():
            s, restart = e["summary"], e.get("restart")
            label = e["label"] if e["group"] == "candidate" else f"{e['label']}, as generated"
            rows.append(
                (label, fmt(s["p50_ms"], 1), fmt(s["p95_ms"], 1), rate(s),
                 ratio(s["tasks_per_s"], a["tasks_per_s"]), cpu_split(s),
                 fmt(s["idle_cpu_pct"], 2),
                 f"{restart['stored']}/{restart['sent']}" if restart else "–")
            )  # fmt: skip
    lines += table(
        ["variant", "p50 ms", "p95 ms", "tasks/s (range)", "÷ (a)", "CPU ms/task", "idle CPU %",
         "results stored after a PostgreSQL restart"],
        rows,
    )  # fmt: skip
    for name, profile in report.get("profiles", {}).items():
        for part, what in (("pool", "pool processes, while they had a task"),
                           ("main", "main process, while busy")):  # fmt: skip
            if part in profile:
                lines += ["", f"#### Profile: {name}: {what}", "",
                          f"py-spy, 200 samples/s, during {args['tasks']} tasks "
                          f"({profile[part]['busy_samples']} samples).", ""]  # fmt: skip
                lines += table(["where", "%"], profile[part]["shares_pct"].items())
    failures = [(e["label"], i, r["error"]) for e in by.values()
                for i, r in enumerate(e["runs"], 1) if "error" in r]  # fmt: skip
    if failures:
        lines += ["", "#### Failed runs (left out of the medians)", ""]
        lines += table(
            ["variant", "run", "error"],
            [(k, i, err[-300:].replace("|", "/")) for k, i, err in failures],
        )
    backlog = backlog_summary(report)
    if backlog:
        empty = backlog[0]["tasks_per_s"]
        lines += [
            "",
            "#### Embedded broker with a backlog",
            "",
            "Tasks waiting behind the timed ones when the worker starts: 2000 tasks are "
            "timed after 200 others; then one process lists the queue folder and claims, "
            "reads and acknowledges up to 1,000 messages with the rest waiting.",
            "",
        ]
        lines += table(
            ["tasks waiting", "tasks/s", "÷ empty queue", "listing, ms", "claim µs/message"],
            [(f"{b['waiting']:,}", fmt(b["tasks_per_s"]), ratio(b["tasks_per_s"], empty),
              fmt(b["listing_ms"], 1), fmt(b["claim_us"])) for b in backlog],
        )  # fmt: skip
    cleanup = cleanup_summary(report)
    if cleanup:
        lines += [
            "",
            f"#### Beat's cleanup of {cleanup['expired']:,} expired results beside a busy worker",
            "",
            "The embedded default on SQLite, a default worker. `add` tasks are sent one at a "
            "time, each once the previous result is read, until `celery.backend_cleanup` is "
            "done; the worst run's slowest round trip in brackets.",
            "",
        ]
        lines += table(
            ["cleanup, s", "tasks meanwhile", "round trip p50 ms", "p99 ms", "slowest, s",
             "failed tasks"],
            [(fmt(cleanup["seconds"], 1), fmt(cleanup["during"]), fmt(cleanup["p50_s"] * 1000, 1),
              fmt(cleanup["p99_s"] * 1000), f"{cleanup['slowest_s']:.2f} "
              f"({cleanup['worst_s']:.2f})", cleanup["failed"])],
        )  # fmt: skip
    if peers and report.get("peers"):
        lines += peers_markdown(report)
    lines += ["", "#### Targets", ""]
    lines += table(
        ["target", "previous defaults", "generated defaults", "best candidate"],
        verdicts(report),
    )
    named = [by[key]["label"] + (", as generated" if key in GENERATED.values() else "")
             for key in BEST.values() if key in by]  # fmt: skip
    lines += ["", "Best candidate: the one closest to the target that keeps every guarantee: "
              + "; ".join(named) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def verdicts(report):
    """(target, verdicts on the previous defaults, the generated ones and the best candidate)."""
    by = {k: v["summary"] for k, v in report["variants"].items()}
    a = by["a-bare"]["tasks_per_s"]
    redis_sqlite = by.get("redis-db-sqlite", {}).get("tasks_per_s")
    targets = (
        ("embedded round trip p50 ≤ 10 ms", "embedded", "p50_ms", 10, -1, "{:.1f} ms"),
        ("embedded idle CPU ≤ 0.1% of a core", "embedded", "idle_cpu_pct", 0.1, -1, "{:.3f}%"),
        ("embedded ≥ 1.2 × Redis broker, same django-db SQLite results", "embedded",
         "tasks_per_s", 1.2 * (redis_sqlite or float("inf")), 1, "{:.0f} tasks/s"),
        ("Redis + PostgreSQL ≥ 0.8 × (a)", "redis-pg", "tasks_per_s", 0.8 * a, 1,
         "{:.0f} tasks/s = {:.2f} × (a)"),
    )  # fmt: skip
    rows = []
    for target, case, figure, limit, sign, text in targets:
        cells = []
        for key in (PREVIOUS[case], GENERATED[case], BEST[case]):
            x = by.get(key, {}).get(figure)
            met = x is not None and (x >= limit if sign > 0 else x <= limit)
            cells.append(
                "–" if x is None else f"{'met' if met else '**missed**'}: " + text.format(x, x / a)
            )
        rows.append((target, *cells))
    backlog = backlog_summary(report)
    if backlog and backlog[-1]["tasks_per_s"] and backlog[0]["tasks_per_s"]:
        ratio_ = backlog[-1]["tasks_per_s"] / backlog[0]["tasks_per_s"]
        rows.append(
            (
                f"embedded with {backlog[-1]['waiting']:,} waiting ≥ 0.8 × empty queue",
                "–",
                f"{'met' if ratio_ >= 0.8 else '**missed**'}: {ratio_:.2f} ×",
                "(unchanged)",
            )
        )
    cleanup = cleanup_summary(report)
    if cleanup:
        slowest = cleanup["slowest_s"]
        rows.append(
            (
                f"slowest round trip beside beat's cleanup of {cleanup['expired']:,} "
                "expired results < 1 s",
                "–",
                f"{'met' if slowest < 1 else '**missed**'}: {slowest:.2f} s",
                "(unchanged)",
            )
        )
    total = median([f["total"] for f in report["first_result"]])
    rows.append(("time to first result < 5 s", "–", f"{'met' if total < 5 else '**missed**'}: "
                 f"{total:.1f} s", "(unchanged)"))  # fmt: skip
    return rows


def cleanup_summary(report):
    """Medians of the cleanup runs that succeeded, the worst slowest round trip, and how
    many tasks failed in all of them; None without any."""
    runs = [r for r in report.get("cleanup", []) if "error" not in r]
    if not runs:
        return None
    keys = ("expired", "seconds", "during", "p50_s", "p99_s", "slowest_s")
    return {k: median([r[k] for r in runs]) for k in keys} | {
        "worst_s": max(r["slowest_s"] for r in runs),
        "failed": sum(r["failed"] for r in runs),
    }


def backlog_summary(report):
    """Medians of the embedded default's backlog runs, by number of tasks waiting."""
    runs = report["variants"].get(GENERATED["embedded"], {}).get("backlog", {})
    keys = ("tasks_per_s", "listing_ms", "claim_us")  # a failed run has only "error"
    return [
        {"waiting": int(waiting)}
        | {k: median([r[k] for r in rs if r.get(k) is not None]) for k in keys}  # fmt: skip
        for waiting, rs in sorted(runs.items(), key=lambda item: int(item[0]))
    ]


def chart(report, path):
    """Three panels side by side, one bar per variant: throughput, latency, CPU per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = list(report["variants"].values())[::-1]
    summaries = [e["summary"] for e in entries]
    colors = {"matrix": "#4c72b0", "side": "#dd8452", "candidate": "#55a868"}
    y = list(range(len(entries)))
    fig, axes = plt.subplots(1, 3, figsize=(18, 0.32 * len(entries) + 2), sharey=True)
    axes[0].barh(
        y, [s["tasks_per_s"] or 0 for s in summaries], color=[colors[e["group"]] for e in entries]
    )
    ceiling = report["variants"]["a-bare"]["summary"]["tasks_per_s"]
    axes[0].axvline(0.8 * ceiling, color="grey", ls="--", lw=1, label="0.8 × (a)")
    axes[0].set_xlabel(f"tasks/s, {report['args']['tasks']} tasks until every result is stored")
    axes[0].legend(loc="lower right")
    axes[1].barh(
        y, [s["p50_ms"] or 0 for s in summaries], color=[colors[e["group"]] for e in entries]
    )
    axes[1].scatter(
        [s["p95_ms"] or 0 for s in summaries], y, marker="|", color="black", s=90, label="p95"
    )
    axes[1].set_xscale("log")
    axes[1].set_xlabel("round trip, ms (bar: p50; tick: p95; log scale)")
    axes[1].legend(loc="lower right")
    left = [0.0] * len(entries)
    palette = ("#dd8452", "#4c72b0", "#c44e52", "#8172b2", "#937860")
    for (part, name), color in zip(CPU_PARTS.items(), palette, strict=True):
        widths = [s["cpu_ms_per_task"][part] or 0 for s in summaries]
        axes[2].barh(y, widths, left=left, color=color, label=name)
        left = [x + w for x, w in zip(left, widths, strict=True)]
    axes[2].set_xlabel("CPU ms per task, by process")
    axes[2].legend(loc="lower right", fontsize=8)
    axes[0].set_yticks(y, [e["label"] for e in entries], fontsize=8)
    finish(fig, axes, report, path, "Blue: brokers × result backends, generated defaults. "
           "Orange: (a) bare Celery, (c) cookiecutter-django's settings. Green: candidate "
           "changes.")  # fmt: skip


def finish(fig, axes, report, path, title):
    """Grid lines, the title over the run's cores, repeats and date; saved to `path`."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"{title}\n{report['machine']['cores']} cores, medians of {report['args']['repeat']} "
        f"runs, {report['started']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the peers (bench/peers.py) ---------------------------------------------------------------

# Our rows in the peers table, (key, label); None: the PostgreSQL group starts after it.
OURS = [
    ("filesystem-db-sqlite", "ours, generated default: embedded broker + django-db, SQLite"),
    ("huey", None), ("django-q2", None), ("django-tasks-db", None),
    ("filesystem-db-postgresql", "ours: embedded broker + django-db, PostgreSQL"),
    ("redis-db-postgresql", "ours: Redis + django-db, PostgreSQL"),
    ("procrastinate", None),
]  # fmt: skip
NOT_MEASURED = "not measured for this row"


def peer_rows(report):
    """(label, versions, figures, backlog runs, kill, what is read back) for each row."""
    by, entries = report["variants"], report.get("peers", {})
    packages = report["machine"]["packages"]
    ours_versions = f"celery {packages['celery']}, django {packages['django']}"
    rows = []
    for key, label in OURS:
        if key in entries:
            e = entries[key]
            versions = ", ".join(f"{k} {v}" for k, v in e.get("versions", {}).items())
            figures = e.get("error") or figures_of(e["runs"])
            rows.append((e["label"], versions, figures, e.get("peers_backlog"), e.get("kill"),
                         e["results"], e.get("counter"), e.get("workloads")))  # fmt: skip
        elif key in by and "summary" in by[key]:
            e = by[key]
            rows.append((label, ours_versions, e["summary"], e.get("peers_backlog"),
                         e.get("kill"), "read back (TaskResult rows)", e.get("counter"),
                         e.get("workloads")))  # fmt: skip
    return rows


def figures_of(runs):
    ok = [r for r in runs if "error" not in r]
    return summarize(ok) if ok else runs[-1]["error"]


def backlog_rate(backlog, waiting):
    """Tasks/s of the backlog run with `waiting` tasks behind, its error, or None."""
    run = (backlog or {}).get(str(waiting), {})
    return run.get("tasks_per_s", run.get("error"))


def backlog_cell(backlog, waiting):
    rate, empty = backlog_rate(backlog, waiting), backlog_rate(backlog, 0)
    if rate is None:
        return NOT_MEASURED
    if isinstance(rate, str):
        return "failed: " + rate[-200:]
    return f"{fmt(rate)} ({ratio(rate, empty if isinstance(empty, float) else None)} ×)"


def kill_cell(kill):
    if not kill:
        return NOT_MEASURED
    if "error" in kill:
        return "failed: " + kill["error"][-200:]
    return f"{kill['lost']} ({kill['sent']} − {kill['done']})"


def counter_cell(counter):
    if not counter:
        return NOT_MEASURED
    if "skipped" in counter or "error" in counter:
        return counter.get("skipped") or "failed: " + counter["error"][-200:]
    return f"{fmt(counter['tasks_per_s'])}; value {counter['value']} of {counter['tasks']}"


def peers_markdown(report):
    """The peers table, then one line per row on how it was set up."""
    args, waiting = report["args"], report.get("peers_waiting", 0)
    lines = [
        "", "#### Peers, same work", "",
        f"The `add` task, concurrency 2 everywhere. Round trip: {args['samples']} tasks one at "
        "a time after random pauses of up to 0.1 s, each result polled every 5 ms. "
        f"Throughput: {args['tasks']} tasks at once, until every result can be read (the "
        "peers' client reads each in turn, where the peer stores it). Idle CPU: the worker's "
        f"process tree over {args['idle_seconds']:g} s after start-up. Backlog: "
        f"{args['tasks']} tasks timed after 200 others, with {waiting:,} more waiting when "
        f"the worker starts (÷ the same with none waiting). Counter: {args['tasks']} "
        "read-modify-write increments of one row at once (the generated project's "
        "increment_counter: the row read locked, written back plus one, in one transaction), "
        f"tasks/s and the value once each result can be read. Kill -9: {args['tasks']} tasks "
        "queued, a worker started and killed with SIGKILL (main process, then its process "
        "group) once a quarter of the results can be read, a worker started again; lost: "
        "sent − results readable once the queue has had its own redelivery delay + 20 s. "
        f"Medians of {args['repeat']} runs; backlog and kill -9 once each.",
        "",
    ]  # fmt: skip
    rows = []
    for label, versions, s, backlog, kill, results, count, _ in peer_rows(report):
        if isinstance(s, str):  # the peer could not be set up or failed every run
            rows.append((label, versions or "–", *["failed: " + s[-200:]] * 6, results))
            continue
        rows.append((label, versions, f"{fmt(s['p50_ms'], 1)} / {fmt(s['p95_ms'], 1)}",
                     fmt(s["tasks_per_s"]), backlog_cell(backlog, waiting),
                     NOT_MEASURED if s["idle_cpu_pct"] is None else fmt(s["idle_cpu_pct"], 2),
                     counter_cell(count), kill_cell(kill), results))  # fmt: skip
    lines += table(
        ["queue", "versions", "round trip p50 / p95, ms", "tasks/s",
         f"tasks/s, {waiting:,} waiting", "idle CPU, % of a core", "counter: tasks/s; value",
         "lost to kill -9 "
         "(sent − done)", "results"],
        rows,
    )  # fmt: skip
    lines += workloads_markdown(report)
    lines += ["", "How each peer was set up:", ""]
    lines += [f"- **{e['label']}**: {e['config']}." for e in report.get("peers", {}).values()]
    ours = {key: label for key, label in OURS if label}
    lines += [f"- **{ours[key]}**: {e['peers_config']}." for key, e in report["variants"].items()
              if key in ours and "peers_config" in e]  # fmt: skip
    return lines


NAP_CEILING = 2 / 0.05  # tasks/s: 2 workers, each task asleep for 50 ms


def workload_cells(workloads, rate):
    """The nap, in-flight and many-tasks cells of one row; `rate`: its --tasks throughput."""

    def cell(key, show):
        run = workloads if "error" in (workloads or {}) else (workloads or {}).get(key)
        if not run:
            return NOT_MEASURED
        return "failed: " + run["error"][-200:] if "error" in run else show(run)

    def many(r):
        return f"{fmt(r['tasks_per_s'])} ({r['tasks']:,} tasks; {ratio(r['tasks_per_s'], rate)} ×)"

    def naps(r):
        return f"{fmt(r['tasks_per_s'], 1)} ({ratio(r['tasks_per_s'], NAP_CEILING)} ×)"

    def trip(r):
        return f"{fmt(r['p50_ms'], 1)} / {fmt(r['p95_ms'], 1)}"

    return (
        cell("naps", naps),
        cell("in_flight_10", trip),
        cell("in_flight_100", trip),
        cell("scale", many),
    )


def workloads_markdown(report):
    """The peers' second table: CPU per task by process, then the other workloads."""
    args = report["args"]
    lines = [
        "", "#### Peers, more work: CPU per task, a task that waits, more in flight, more tasks",
        "",
        "CPU ms per task, while the throughput runs above sent and read their tasks: the worker's "
        "main process / the rest of its process tree (pool processes; the db_worker processes "
        "of django-tasks-db, whose tree's root is a shell) / the database server (PostgreSQL; "
        "SQLite runs inside each process) / the broker server (Redis) / the client, sending "
        "the tasks and reading each result; medians of the same runs. Once a run, on one fresh "
        "worker: nap, a task asleep for 50 ms that returns True (I/O-bound; 2 workers make at "
        f"most {NAP_CEILING:.0f} a second: ÷ that), sent at once until each result can be "
        "read; round trips of `add` tasks sent 10 and 100 together (rounds of that many, each "
        "task timed from its send until its result is read); the throughput of many more "
        f"`add` tasks sent at once (÷ the {args['tasks']} tasks' median).",
        "",
    ]  # fmt: skip
    rows = []
    for label, _, s, *_, workloads in peer_rows(report):
        if isinstance(s, str):
            rows.append((label, *["failed: " + s[-200:]] * 5))
            continue
        cpu = NOT_MEASURED if s["cpu_ms_per_task"]["client"] is None else cpu_split(s)
        rows.append((label, cpu, *workload_cells(workloads, s["tasks_per_s"])))
    return lines + table(
        ["queue", "CPU ms per task: " + " / ".join(CPU_PARTS), "nap: tasks/s",
         "round trip p50 / p95, ms, 10 in flight", "100 in flight", "tasks/s, many tasks"],
        rows,
    )  # fmt: skip


def peers_chart(report, path):
    """Four panels, one bar per row of the peers table: throughput (with the backlog's as a
    tick), round trip, idle CPU, tasks lost to kill -9."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in peer_rows(report) if not isinstance(r[2], str)][::-1]
    y = list(range(len(rows)))
    colors = ["#4c72b0" if r[0].startswith("ours") else "#dd8452" for r in rows]

    fig, axes = plt.subplots(1, 4, figsize=(18, 0.45 * len(rows) + 2), sharey=True)
    axes[0].barh(y, [r[2]["tasks_per_s"] or 0 for r in rows], color=colors)
    waiting = report.get("peers_waiting", 0)
    behind = [backlog_rate(r[3], waiting) for r in rows]
    axes[0].scatter([x if isinstance(x, float) else 0 for x in behind], y, marker="|",
                    color="black", s=90, label=f"{waiting:,} waiting")  # fmt: skip
    axes[0].set_xlabel(f"tasks/s, {report['args']['tasks']} tasks until every result is read")
    axes[1].barh(y, [r[2]["p50_ms"] or 0 for r in rows], color=colors)
    axes[1].scatter([r[2]["p95_ms"] or 0 for r in rows], y, marker="|", color="black", s=90,
                    label="p95")  # fmt: skip
    axes[1].set_xscale("log")
    axes[1].set_xlabel("round trip, ms (bar: p50; tick: p95; log scale)")
    axes[2].barh(y, [r[2]["idle_cpu_pct"] or 0 for r in rows], color=colors)
    axes[2].set_xlabel("idle CPU, % of a core (worker process tree)")
    lost = [r[4]["lost"] if r[4] and "lost" in r[4] else 0 for r in rows]
    axes[3].barh(y, lost, color=colors)
    axes[3].set_xlabel(f"tasks lost to kill -9, of {report['args']['tasks']}")
    axes[0].set_yticks(y, [f"{r[0]}\n{r[1]}" for r in rows], fontsize=8)
    for ax in axes[:2]:
        ax.legend(loc="lower right", fontsize=8)
    finish(fig, axes, report, path, "Blue: ours. Orange: the peers. A row without a bar in "
           "a panel was not measured there (see the table).")  # fmt: skip


def write(report, out, docs=False):
    """results.md and chart.png in `out`; with `docs`, also docs/performance.md and its chart."""
    for entry in report["variants"].values():
        entry["summary"] = summarize(entry["runs"])
    text = markdown(report)
    (out / "results.md").write_text(text)
    chart(report, out / "chart.png")
    if report.get("peers"):
        peers_chart(report, out / "peers.png")
    if docs:  # a run of some variants (--only) leaves the full run's tables as they are
        doc = DOC.read_text()
        if not report["args"]["only"]:
            doc = replace_block(doc, DOC_START, DOC_END, markdown(report, peers=False))
            shutil.copy(out / "chart.png", DOC.with_name("performance.png"))
        if report.get("peers"):
            run = f"Run {report['started']} on: {machine_line(report['machine'])}.\n"
            doc = replace_block(
                doc, PEERS_START, PEERS_END, run + "\n".join(peers_markdown(report))
            )
            shutil.copy(out / "peers.png", DOC.with_name("performance-peers.png"))
        DOC.write_text(doc)
    return text


def replace_block(doc, start, end, text):
    head, rest = doc.split(start, 1)
    return f"{head}{start}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}"
