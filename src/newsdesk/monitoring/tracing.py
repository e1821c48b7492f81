"""Optional OpenTelemetry tracing of the HTTP API (extra `[otel]`).

`NEWSDESK_TRACING=console` prints spans to stdout (for a look on one machine); `otlp` sends them to
the collector named by the standard OTEL_EXPORTER_OTLP_* variables (needs the OTLP exporter
package); `off` (the default) installs nothing, so the request path pays nothing for it.
Spans carry the route template, status code and newsdesk's request id.
"""

from __future__ import annotations

from typing import Any, Literal

from newsdesk.deps import require
from newsdesk.errors import ConfigError

TracingMode = Literal["off", "console", "otlp", "memory"]


def instrument_app(app: Any, mode: TracingMode, *, exporter: Any = None) -> Any:
    """Trace every request of a FastAPI app; returns the tracer provider (None when off).

    `memory` keeps finished spans in an in-memory exporter (passed in, or created) for tests.
    """
    if mode == "off":
        return None
    sdk_trace = require("opentelemetry.sdk.trace", "otel")
    export = require("opentelemetry.sdk.trace.export", "otel")
    fastapi_inst = require("opentelemetry.instrumentation.fastapi", "otel")
    if mode == "console":
        exporter = export.ConsoleSpanExporter()
    elif mode == "otlp":
        otlp = require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otel")
        exporter = otlp.OTLPSpanExporter()
    elif mode == "memory":
        if exporter is None:
            memory = require("opentelemetry.sdk.trace.export.in_memory_span_exporter", "otel")
            exporter = memory.InMemorySpanExporter()
    else:
        raise ConfigError(f"tracing: must be off, console, otlp or memory, got {mode!r}")
    provider = sdk_trace.TracerProvider()
    # Simple (synchronous) export only for tests; batching keeps export off the request path.
    processor = (export.SimpleSpanProcessor(exporter) if mode == "memory"
                 else export.BatchSpanProcessor(exporter))
    provider.add_span_processor(processor)
    fastapi_inst.FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics",
        server_request_hook=_tag_request_id,
    )
    return provider


def _tag_request_id(span: Any, scope: dict[str, Any]) -> None:
    if span is not None and span.is_recording():
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                span.set_attribute("newsdesk.request_id", value.decode("latin-1"))
