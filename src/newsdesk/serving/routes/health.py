"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Request
from fastapi.responses import Response

from newsdesk.monitoring.metrics import CONTENT_TYPE
from newsdesk.serving.routes._common import json_response
from newsdesk.serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Response:
    return json_response({"status": "ok", "pid": os.getpid()})  # which worker answered


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}},
            summary="Model and stores are loaded (503 otherwise)")
async def readyz(request: Request) -> Response:
    svc = getattr(request.app.state, "services", None)
    if svc is None:
        return json_response({"status": "starting", "checks": {}}, 503)
    loop = asyncio.get_running_loop()
    # patient (OnlineStore.ready): one reply slower than the request path's timeout on a
    # loaded machine is not an outage, and must not take the service out of rotation
    store_ok = await loop.run_in_executor(svc.io_pool, svc.store.ready)
    log_ok = bool(svc.event_log.health().get("ok", False))
    checks = {"model": svc.registry.ready, "online_store": bool(store_ok), "event_log": log_ok}
    if svc.ingestor.applier is not None:  # the shared log's consumer thread is running
        checks["event_consumer"] = svc.ingestor.applier.alive
    ready = all(checks.values())
    # while the store loads from the dataset the service serves (readers not yet loaded are
    # answered cold): ready to take traffic, and says so
    keeper = svc.keeper  # the online state being rebuilt from the log: served, says so
    loading = svc.bootstrap.loading or (keeper is not None and keeper.rebuilding)
    status = ("loading" if loading else "ready") if ready else "not_ready"
    body = {"status": status, "model_version": svc.registry.version, "checks": checks,
            "bootstrap": svc.bootstrap.status(), "pid": os.getpid()}
    if keeper is not None:
        body["online_state"] = keeper.status()
        if slow := keeper.slow:  # answering, but too slowly for the request path: degraded
            body["slow"] = slow
    if svc.registry.last_refused is not None:  # a bundle that failed to load (not serving)
        body["model_refused"] = svc.registry.last_refused
    if svc.breaker.state != "closed":  # the store's circuit: requests skip it meanwhile
        body["breaker"] = svc.breaker.state
    return json_response(body, 200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
