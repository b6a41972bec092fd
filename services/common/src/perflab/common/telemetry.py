"""OpenTelemetry tracing set-up shared by all services.

The exporter endpoint, headers and sampler come from the standard `OTEL_*` environment
variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), so
sampling is a deployment decision (`make local` and the experiments keep 10 %, the SDK's
default is every trace).
"""

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup_tracing(service_name: str, enabled: bool = True) -> Callable[[], None]:
    """Installs a global tracer provider; returns the function that flushes and stops it.

    Disabled, the API's no-op provider stays in place: spans cost nearly nothing then, which
    is what the tracing-overhead comparison needs (a provider without exporter would still
    build every span).
    """
    if not enabled:
        return lambda: None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider.shutdown


def current_trace_id() -> str:
    """Hex trace id of the active span when its trace is sampled (Jaeger will have it), else "".

    An unsampled span still has a valid trace id; an exemplar or an X-Trace-Id naming it would
    link to a trace nobody kept.
    """
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid and ctx.trace_flags.sampled else ""
