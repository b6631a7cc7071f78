"""Tracing stays off until OTEL_EXPORTER_OTLP_ENDPOINT is set (taskqueue/tracing.py)."""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from taskqueue.tracing import start_tracing


def test_nothing_is_set_up_without_an_endpoint(settings):
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = ""
    start_tracing()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not any("opentelemetry" in name for name in settings.MIDDLEWARE)
