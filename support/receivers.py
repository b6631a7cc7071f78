"""Local stand-ins for the services an SDK reports to, for the observability tests: each
listens on 127.0.0.1 on a free port, in a thread of the test process, answers as the real
service does and keeps what it was sent.

    with SentryReceiver() as sentry:
        project.env["SENTRY_DSN"] = sentry.dsn
        ...
        sentry.wait_for(lambda item: item["type"] == "event")

    with OtlpReceiver() as otlp:
        project.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.endpoint
"""

import gzip
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

DEADLINE = 60  # seconds to wait for what a test expects to arrive


class Receiver:
    """An HTTP server that keeps what is POSTed to `path`, as `parse` reads it, and answers
    each POST 200 with `answer`."""

    path = "/"
    answer, answer_type = b"{}", "application/json"

    def __init__(self):
        self.received = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path != receiver.path:
                    self.send_error(404)
                    return
                body = decompress(body, self.headers.get("Content-Encoding"))
                with receiver.lock:
                    receiver.received.extend(receiver.parse(body))
                self.send_response(200)
                self.send_header("Content-Type", receiver.answer_type)
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *args):
                pass  # quiet: the tests read what was received

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def parse(self, body):
        """What a body holds, as a list of items."""
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def items(self):
        with self.lock:
            return list(self.received)

    def wait_for(self, predicate, what="an item"):
        """The first item received for which `predicate` is true, waiting up to DEADLINE."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            found = [item for item in self.items() if predicate(item)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"{type(self).__name__} got no {what} in {DEADLINE} s")


def decompress(body, encoding):
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    assert encoding in (None, "identity"), f"unexpected Content-Encoding {encoding}"
    return body


class SentryReceiver(Receiver):
    """Sentry's ingestion API for project 1: envelopes (sentry-sdk 2 sends nothing else)."""

    path = "/api/1/envelope/"

    @property
    def dsn(self):
        return f"http://key@127.0.0.1:{self.port}/1"

    def parse(self, body):
        """An envelope's items, each {"type": ..., **its payload}: a header line, then each
        item's header line and its payload (`length` bytes, else one line)."""
        items = []
        lines = body.split(b"\n", 1)
        rest = lines[1] if len(lines) > 1 else b""
        while rest.strip():
            header, rest = rest.split(b"\n", 1)
            header = json.loads(header)
            if "length" in header:
                payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
            else:
                payload, _, rest = rest.partition(b"\n")
            items.append({"type": header["type"], **json.loads(payload)})
        return items


class OtlpReceiver(Receiver):
    """An OpenTelemetry collector's OTLP/HTTP traces endpoint (protobuf): each item a span,
    {"name", "kind", "trace_id", "span_id", "parent_id", "attributes", "pid", "start", "end"},
    "pid" the process.pid of its resource, "start" and "end" in nanoseconds since the epoch."""

    path = "/v1/traces"
    answer_type = "application/x-protobuf"

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def answer(self):
        return ExportTraceServiceResponse().SerializeToString()

    def parse(self, body):
        spans = []
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                spans.extend(
                    {
                        "name": span.name,
                        "kind": Span.SpanKind.Name(span.kind),
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex(),
                        "attributes": attributes(span.attributes),
                        "pid": resource.get("process.pid"),
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                    }
                    for span in scope_spans.spans
                )
        return spans


def attributes(pairs):
    """OTLP key-values as a dict of plain values."""
    return {pair.key: getattr(pair.value, pair.value.WhichOneof("value")) for pair in pairs}
