"""Metrics for Prometheus, without task events: each worker counts the tasks it runs, and
the web process reports how many messages wait in each queue.

- A worker started with ``--metrics-port [HOST:]PORT`` serves, at that address,
  ``celery_tasks_total`` by task name and final state (SUCCESS, FAILURE, RETRY...),
  ``celery_tasks_received_total``, and the histograms ``celery_task_runtime_seconds``
  and ``celery_task_wait_seconds`` (from being sent to starting; the sender's clock and
  the worker's must agree). Its pool processes pass each task's figures up a pipe to the
  worker's main process, which serves them: one registry per worker, no files.
- ``/metrics/`` on the web site serves ``celery_queue_length`` by queue, read from the
  broker at each scrape, so it keeps reporting while no worker runs. It answers only
  requests that carry ``Authorization: Bearer <METRICS_TOKEN>``.
"""

import json
import os
import secrets
import threading
import time

import click
from celery import bootsteps, current_app
from celery.signals import before_task_publish, task_postrun, task_prerun, task_received
from django.conf import settings
from django.http import Http404, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

SENT_AT = "sent_at"  # a header of each task's message: time.time() when it was sent

worker_metrics = CollectorRegistry()
TASKS = Counter(
    "celery_tasks", "Tasks run, by final state", ["task", "state"], registry=worker_metrics
)
RECEIVED = Counter(
    "celery_tasks_received", "Tasks received from the broker", ["task"], registry=worker_metrics
)
RUNTIME = Histogram(
    "celery_task_runtime_seconds", "Time a task ran", ["task"], registry=worker_metrics
)
WAIT = Histogram(
    "celery_task_wait_seconds",
    "Time from a task's sending to its start",
    ["task"],
    # Up to the hour a task may wait for a busy worker.
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, float("inf")),
    registry=worker_metrics,
)

# Where a pool process writes one JSON line per task run (a write smaller than PIPE_BUF
# is atomic); the worker's main process reads them. Set in the main process before the
# pool starts, inherited by each pool process.
report_fd = None


def stamp_sending_time(headers=None, **kwargs):
    headers[SENT_AT] = time.time()


def count_received(request=None, **kwargs):
    RECEIVED.labels(request.name).inc()


def note_start(task=None, **kwargs):
    task.request.metrics_start = time.monotonic()
    if sent_at := getattr(task.request, SENT_AT, None):
        task.request.metrics_wait = max(time.time() - sent_at, 0)


def report_run(task=None, state=None, **kwargs):
    start = getattr(task.request, "metrics_start", None)
    if report_fd is None or start is None or task.request.is_eager:
        return
    figures = {
        "task": task.name,
        "state": state,
        "runtime": time.monotonic() - start,
        "wait": getattr(task.request, "metrics_wait", None),
    }
    os.write(report_fd, json.dumps(figures).encode() + b"\n")


def record_reports(read_fd):
    """Count each run the pool processes report (a thread of the worker's main process)."""
    with os.fdopen(read_fd, "rb") as reports:
        for line in reports:
            record(line)


def record(report):
    figures = json.loads(report)
    TASKS.labels(figures["task"], figures["state"]).inc()
    RUNTIME.labels(figures["task"]).observe(figures["runtime"])
    if figures["wait"] is not None:
        WAIT.labels(figures["task"]).observe(figures["wait"])


class Exporter(bootsteps.StartStopStep):
    """Serves worker_metrics at --metrics-port, in the worker's main process."""

    name = "metrics exporter"

    def __init__(self, worker, metrics_port=None, **options):
        self.address = metrics_port
        if self.address:
            # Before the pool starts, so that every pool process inherits the pipe.
            global report_fd
            read_fd, report_fd = os.pipe()
            threading.Thread(target=record_reports, args=(read_fd,), daemon=True).start()

    def start(self, worker):
        if self.address:
            host, _, port = self.address.rpartition(":")
            start_http_server(int(port), host or "127.0.0.1", registry=worker_metrics)


class QueueLengths:
    """celery_queue_length: the messages waiting in each queue, asked of the broker."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        lengths = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting in a queue", labels=["queue"]
        )
        with self.app.connection_for_read() as connection:
            for queue in self.app.amqp.queues:
                channel = connection.channel()
                try:
                    _, waiting, _ = channel.queue_declare(queue, passive=True)
                except connection.channel_errors:  # not declared yet: nothing was sent
                    waiting = 0
                finally:
                    channel.close()
                lengths.add_metric([queue], waiting)
        yield lengths


def queue_metrics(request):
    """The queues' lengths for Prometheus, to the bearer of METRICS_TOKEN only."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.METRICS_TOKEN
    if not (expected and scheme == "Bearer" and secrets.compare_digest(token, expected)):
        raise Http404
    registry = CollectorRegistry()
    registry.register(QueueLengths(current_app))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def measure_tasks(app):
    """Count the app's tasks, served by workers started with --metrics-port."""
    app.user_options["worker"].add(
        click.Option(
            ["--metrics-port"],
            envvar="WORKER_METRICS_PORT",
            help="Serve Prometheus metrics at [HOST:]PORT (HOST defaults to 127.0.0.1).",
        )
    )
    app.steps["worker"].add(Exporter)
    before_task_publish.connect(stamp_sending_time)
    task_received.connect(count_received)
    task_prerun.connect(note_start)
    task_postrun.connect(report_run)
