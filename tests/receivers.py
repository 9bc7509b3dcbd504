"""Real receivers on loopback standing in for Loki (push API) and Tempo (OTLP/HTTP and OTLP/gRPC)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class _Receiver:
    """An HTTP server that records POST bodies. ``statuses`` are answered first, then ``default``."""

    path = "/"

    def __init__(self, default: int = 204):
        self.default = default
        self.statuses: list[int] = []
        self.hang = False
        self.bodies: list[tuple[dict, bytes]] = []
        self.released = threading.Event()
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.hang:
                    receiver.released.wait(60)
                    return
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                if 200 <= status < 300 and self.path == receiver.path:
                    with receiver.received:
                        receiver.bodies.append((dict(self.headers), body))
                        receiver.received.notify_all()
                reply = receiver.reply(status)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def reply(self, status: int) -> bytes:
        return b""

    def wait_until(self, predicate, timeout: float = 10.0):
        """Wait for ``predicate(self)`` to become truthy; return its value or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.received:
            while True:
                result = predicate(self)
                remaining = deadline - time.monotonic()
                if result or remaining <= 0:
                    return result
                self.received.wait(remaining)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class LokiReceiver(_Receiver):
    """Accepts Loki's JSON push API (gzip), keeps the decoded streams."""

    path = "/loki/api/v1/push"

    def lines(self) -> list[tuple[dict, dict]]:
        """Every pushed line as (stream labels, parsed JSON line)."""
        out = []
        for headers, body in list(self.bodies):
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            for stream in json.loads(body)["streams"]:
                for stamp, line in stream["values"]:
                    assert stamp.isdigit()
                    out.append((stream["stream"], json.loads(line)))
        return out


class OtlpReceiver(_Receiver):
    """Accepts OTLP/HTTP protobuf on /v1/traces and decodes it with opentelemetry-proto."""

    path = "/v1/traces"

    def __init__(self):
        super().__init__(default=200)

    def reply(self, status: int) -> bytes:
        return ExportTraceServiceResponse().SerializeToString() if status == 200 else b""

    def spans(self) -> list[dict]:
        """Every received span flattened: name, ids (hex), parent, kind, attributes, resource."""
        out = []
        for _, body in list(self.bodies):
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "resource": resource,
                            }
                        )
        return out


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None
