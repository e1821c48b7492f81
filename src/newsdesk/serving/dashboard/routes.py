"""The web dashboard: its pages, static assets and the read-only JSON views behind them.

    GET /dashboard[/{page}]                   one HTML shell; dashboard.js renders the page
    GET /dashboard/static/{name}              the hand-written JS / CSS (package data, no CDN)
    GET /dashboard/api/overview               metrics summary (traffic, latency per stage, CTR)
    GET /dashboard/api/models                 registry state, bundles with offline metrics
    GET /dashboard/api/experiments            every experiment with its rollout state
    GET /dashboard/api/experiments/{id}/report  the admin report, cached REPORT_TTL_S
    GET /dashboard/api/preview/{user_id}      a slate as the user would get it, NOT logged
    GET /dashboard/api/monitoring             GET /v1/monitoring if the app has it

Read-only views are open, as the issue asks: they expose aggregate figures and model / test
names, never keys. Every action (promote, rollback, kill) is sent by the page to the existing
admin routes with the X-API-Key the operator typed in (kept in sessionStorage, never served).

Why some views are here rather than in the browser calling the API directly:
- the admin list / report routes need the key, and reading must not;
- the report exports the whole event log on every call, so an open view of it is cached
  (one computation per experiment per REPORT_TTL_S, however many pages poll it);
- a preview through POST /v1/recommendations would log an impression for the real user
  (training data, experiment exposure, CTR counters); the preview runs the same assignment and
  pipeline but logs nothing;
- /v1/monitoring (serving/routes/monitoring.py) is asked from here, through the app itself:
  a server without it (an older build) or one that fails answers "not available, because ..."
  instead of a failed fetch, which the browser would log as a console error.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response

from newsdesk.models.base import RequestContext
from newsdesk.serving.app import services
from newsdesk.serving.dashboard.metrics_summary import summarize
from newsdesk.serving.middleware import error_json
from newsdesk.serving.routes._common import json_response, render_items, request_id
from newsdesk.serving.variants import ExperimentAssigner, resolve_model

STATIC = Path(__file__).parent / "static"
PAGES = ("overview", "monitoring", "experiments", "models", "preview")
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
REPORT_TTL_S = 15.0
MONITORING_PATH = "/v1/monitoring"
UserId = Annotated[str, PathParam(min_length=1, max_length=128,
                                  pattern=r"^[A-Za-z0-9_.:@\-]+$")]
ExperimentId = Annotated[str, PathParam(min_length=1, max_length=128,
                                        pattern=r"^[A-Za-z0-9_.@:\-]+$")]

router = APIRouter(prefix="/dashboard", include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-store"}


# -- pages and assets -----------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
async def dashboard_home() -> Response:
    return _shell()


@router.get("/static/{name}")
async def static_asset(name: str) -> Response:
    if name not in ASSETS:  # a fixed list: no path is ever built from the request
        raise HTTPException(404, f"no dashboard asset '{name}'")
    return FileResponse(STATIC / name, media_type=ASSETS[name])


@router.get("/{page}", response_class=HTMLResponse)
async def dashboard_page(page: str) -> Response:
    if page not in PAGES:
        raise HTTPException(404, f"no dashboard page '{page}'; pages: {', '.join(PAGES)}")
    return _shell()


def _shell() -> Response:
    return HTMLResponse((STATIC / "index.html").read_bytes(), headers=_NO_STORE)


# -- read-only JSON views -------------------------------------------------------------------
@router.get("/api/overview")
async def overview(request: Request) -> Response:
    summary = summarize(request.app.state.metrics.registry)
    return json_response({"request_id": request_id(request), "time": time.time(), **summary})


@router.get("/api/models")
async def models(request: Request) -> Response:
    svc = services(request)
    loop = asyncio.get_running_loop()
    bundles = await loop.run_in_executor(svc.io_pool, svc.registry.bundles)
    offline = await loop.run_in_executor(svc.io_pool, _offline_metrics, svc.settings.bundles_dir)
    rows = [{"version": b.get("version"), "created_at": b.get("created_at"),
             "metrics": offline.get(str(b.get("version")), {})} for b in bundles]
    return json_response({"request_id": request_id(request), **svc.registry.status(),
                          "bundles": rows})


def _offline_metrics(bundles_dir: Path) -> dict[str, dict[str, Any]]:
    """Each bundle's manifest metrics by version ({} when bundles are not on disk)."""
    try:
        from newsdesk.models.bundle import list_bundles
    except ImportError:  # the [ml] extra is absent: versions only
        return {}
    return {b.version: flatten_metrics(b.metrics or {}) for b in list_bundles(bundles_dir)}


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric manifest metrics one level deep: {"valid": {"auc": x}} -> {"valid.auc": x}.

    Per-feature importances are left out: dozens of columns nobody compares across versions."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if name == "feature_importance":
            continue
        if isinstance(value, dict):
            out.update({f"{name}.{k}": float(v) for k, v in value.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


@router.get("/api/experiments")
async def experiments(request: Request) -> Response:
    svc = services(request)
    if not isinstance(svc.assigner, ExperimentAssigner):
        return json_response({"request_id": request_id(request), "enabled": False,
                              "experiments": []})
    return json_response({"request_id": request_id(request), "enabled": True,
                          "experiments": svc.assigner.describe()})


@router.get("/api/experiments/{experiment_id}/report")
async def experiment_report(experiment_id: ExperimentId, request: Request) -> Response:
    from newsdesk.serving.routes.experiments import experiment_report as admin_report

    cache: dict[str, tuple[float, int, bytes]] = _state(request, "report_cache", dict)
    lock: asyncio.Lock = _state(request, "report_lock", asyncio.Lock)
    async with lock:  # concurrent pages wait for one computation instead of starting several
        now = time.monotonic()
        for stale in [k for k, v in cache.items() if now - v[0] > REPORT_TTL_S]:
            del cache[stale]  # bounded by the experiments reported on in the last TTL
        hit = cache.get(experiment_id)
        if hit is None:
            try:
                r = await admin_report(experiment_id, request)
                hit = (time.monotonic(), r.status_code, bytes(r.body))
            except HTTPException as exc:
                status, body = error_json(exc.status_code, "report_unavailable",
                                          str(exc.detail), request_id(request))
                hit = (time.monotonic(), status, body)
            if hit[1] != 404:  # unknown ids cost nothing to answer and must not fill the cache
                cache[experiment_id] = hit
    return Response(hit[2], status_code=hit[1], media_type="application/json")


def _state(request: Request, name: str, make: Any) -> Any:
    holder = request.app.state
    value = getattr(holder, f"dashboard_{name}", None)
    if value is None:
        value = make()
        setattr(holder, f"dashboard_{name}", value)
    return value


@router.get("/api/preview/{user_id}")
async def preview(user_id: UserId, request: Request,
                  k: Annotated[int, Query(ge=1, le=100)] = 10,
                  surface: Annotated[str, Query(min_length=1, max_length=64,
                                                pattern=r"^[A-Za-z0-9_.:-]+$")] = "front_page"
                  ) -> Response:
    svc = services(request)
    assignment = svc.assigner.assign(user_id, surface)
    model = resolve_model(assignment, svc.registry)
    ctx = RequestContext(user_id=user_id, now=svc.clock(), surface=surface, k=k)
    result = await svc.pipeline.recommend(ctx, model)
    items = render_items(result.items)
    for item in items:
        entry = svc.catalog.get(item["article_id"])
        item["category"] = entry.category if entry else None
    return json_response({"request_id": request_id(request), "user_id": user_id,
                          "surface": surface, "k": k, "logged": False,
                          "model_version": result.model_version,
                          "experiment": assignment.experiment, "variant": assignment.variant,
                          "degraded": result.degraded, "items": items})


@router.get("/api/monitoring")
async def monitoring(request: Request) -> Response:
    # through the app itself (middleware and error handlers included), not over the network
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        r = await client.get(MONITORING_PATH, timeout=10.0)
    if r.status_code == 404:
        return json_response({"available": False, "reason": f"{MONITORING_PATH} answered 404"})
    try:
        data = r.json()
    except ValueError:
        data = None
    ok = r.status_code == 200
    return json_response({"available": ok, "status": r.status_code, "data": data,
                          "reason": None if ok else f"{MONITORING_PATH} answered "
                                                    f"{r.status_code}"})
