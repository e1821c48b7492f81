"""GET /v1/monitoring: drift, online quality and data quality as JSON (read-only, no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from newsdesk.serving.app import services
from newsdesk.serving.monitoring_schemas import MonitoringOut
from newsdesk.serving.routes._common import json_response

router = APIRouter(prefix="/v1", tags=["monitoring"])


@router.get(
    "/monitoring", response_model=MonitoringOut,
    summary="Model and data monitoring",
    description="PSI of the active model's features and score against its bundle's reference "
                "(refreshed every NEWSDESK_MONITOR_INTERVAL_S), online quality per surface, "
                "variant and model version, and data quality. The same figures are Prometheus "
                "metrics on /metrics.",
)
async def monitoring(request: Request) -> Response:
    svc = services(request)
    version = svc.registry.version if svc.registry.ready else None
    return json_response(request.app.state.monitor.snapshot(version))
