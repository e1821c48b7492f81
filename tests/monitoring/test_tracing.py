"""OpenTelemetry tracing: spans for real requests through a FastAPI app, nothing when off."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from newsdesk.errors import ConfigError
from newsdesk.monitoring.tracing import instrument_app

memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/things/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def test_requests_become_spans_with_route_and_request_id():
    exporter = memory.InMemorySpanExporter()
    app = _app()
    provider = instrument_app(app, "memory", exporter=exporter)
    with TestClient(app) as client:
        assert client.get("/v1/things/42", headers={"x-request-id": "req-1"}).status_code == 200
        client.get("/healthz")  # excluded: health probes would drown the traces
    provider.force_flush()
    servers = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert len(servers) == 1
    span = servers[0]
    assert span.attributes["http.route"] == "/v1/things/{thing_id}"
    assert span.attributes["newsdesk.request_id"] == "req-1"


def test_off_installs_nothing_and_bad_mode_is_named():
    assert instrument_app(_app(), "off") is None
    with pytest.raises(ConfigError, match="tracing"):
        instrument_app(_app(), "loud")  # type: ignore[arg-type]
