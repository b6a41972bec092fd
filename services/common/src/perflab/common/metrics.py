"""Prometheus metrics shared by services, named after the OpenTelemetry semantic conventions
(`rpc.server.duration` becomes `rpc_server_duration_seconds`). Latency histograms carry the trace
id as an exemplar, so a slow bucket in Grafana links to the trace in Jaeger."""

import threading
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer

from prometheus_client import Counter, Histogram
from prometheus_client.exposition import MetricsHandler

from perflab.common.telemetry import current_trace_id

# Buckets from 1 ms to 10 s: fine resolution where a healthy lab lives, coarse in the tail.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

RPC_SERVER_DURATION = Histogram(
    "rpc_server_duration_seconds",
    "Duration of gRPC calls handled by this server.",
    ["rpc_service", "rpc_method", "rpc_grpc_status_code"],
    buckets=LATENCY_BUCKETS,
)
RPC_CLIENT_DURATION = Histogram(
    "rpc_client_duration_seconds",
    "Duration of gRPC calls made by this process.",
    ["rpc_service", "rpc_method", "rpc_grpc_status_code"],
    buckets=LATENCY_BUCKETS,
)
DB_CLIENT_OPERATION_DURATION = Histogram(
    "db_client_operation_duration_seconds",
    "Duration of database operations, by logical operation name.",
    ["db_operation"],
    buckets=LATENCY_BUCKETS,
)


PUBLISHED = Counter(
    "messaging_client_published_messages_total",
    "Messages this process had acknowledged by Kafka, by topic.",
    ["topic"],
)


def observe(histogram: Histogram, seconds: float, **labels: str) -> None:
    """Records a latency with the active trace id as exemplar (when there is one)."""
    trace_id = current_trace_id()
    (histogram.labels(**labels) if labels else histogram).observe(
        seconds, exemplar={"trace_id": trace_id} if trace_id else None
    )


def serve_metrics(
    port: int, host: str = "0.0.0.0", checks: Mapping[str, Callable[[], bool]] | None = None
) -> ThreadingHTTPServer:
    """Serves /metrics (OpenMetrics when asked, so exemplars reach Prometheus) on a thread.

    `checks` maps extra paths such as "/healthz" to a function: 200 when it returns True,
    503 otherwise. Runs outside the event loop, so a blocked loop shows in the probes' latency,
    not as a hung metrics endpoint.
    """
    probes = dict(checks or {})

    class Handler(MetricsHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in probes:
                ok = probes[path]()
                body = b"ok\n" if ok else b"not ready\n"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif path == "/metrics":
                super().do_GET()
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every 5 s would drown the logs

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
