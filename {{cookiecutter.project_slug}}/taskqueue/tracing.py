"""OpenTelemetry traces: a request, the tasks it sends, their runs and the database
queries of each form one trace.

Spans go over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; with none set, nothing is set
up. The SDK reads its other OTEL_* variables itself (OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER...).

Each process that runs requests or tasks sets up its own exporter, which runs a thread:
wsgi.py and asgi.py for web processes, worker_process_init for each of a worker's pool
processes (a thread does not survive the fork that makes one), beat_init for beat. A
pool process that exits (replaced after CELERY_WORKER_MAX_TASKS_PER_CHILD tasks) sends
its last spans first: it leaves with os._exit(), which skips the SDK's own exit handler
(opentelemetry-python-contrib#4916).
"""

import os

from celery.signals import beat_init, worker_process_init, worker_process_shutdown
from django.conf import settings
from django.utils.module_loading import import_string
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# Each query becomes a span too, through the instrumentation of the database's driver
# (installed with the driver: pyproject.toml).
DATABASE_INSTRUMENTORS = {
    "django.db.backends.sqlite3": "opentelemetry.instrumentation.sqlite3.SQLite3Instrumentor",
    "django.db.backends.postgresql": "opentelemetry.instrumentation.psycopg.PsycopgInstrumentor",
    "django.db.backends.mysql": (
        "opentelemetry.instrumentation.mysqlclient.MySQLClientInstrumentor"
    ),
}


def start_tracing(**kwargs):
    """Trace this process's requests and tasks, when OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    if not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return
    provider = TracerProvider(resource=Resource.create({"process.pid": os.getpid()}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine in DATABASE_INSTRUMENTORS:
        import_string(DATABASE_INSTRUMENTORS[engine])().instrument()


def send_last_spans(**kwargs):
    """worker_process_shutdown: send the spans still waiting in this pool process."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def trace_tasks():
    """Set tracing up in each pool process and in beat; send a pool process's last spans."""
    worker_process_init.connect(start_tracing)
    beat_init.connect(start_tracing)
    worker_process_shutdown.connect(send_last_spans)
