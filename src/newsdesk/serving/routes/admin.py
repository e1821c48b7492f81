"""Admin: list bundles, load / promote / roll back a model version (hot swap).

Every route needs the `X-API-Key` header equal to the configured admin key (compared in
constant time). Without a configured key the admin API is disabled (403 for everyone).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request
from fastapi.responses import Response

from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.app import services
from newsdesk.serving.routes._common import json_response, request_id
from newsdesk.serving.schemas import BundleList, ErrorBody, SwapAck

log = get_logger("newsdesk.serving.admin")
Version = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


async def require_admin(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None,
) -> None:
    key = services(request).settings.admin_api_key
    if key is None:
        raise HTTPException(403, "field 'X-API-Key': the admin API is disabled (no "
                                 "NEWSDESK_ADMIN_API_KEY set)")
    if x_api_key is None:
        raise HTTPException(401, "field 'X-API-Key': missing header",
                            headers={"WWW-Authenticate": "ApiKey"})
    if not hmac.compare_digest(x_api_key.encode(), key.get_secret_value().encode()):
        log.warning("admin_key_rejected")
        raise HTTPException(403, "field 'X-API-Key': invalid admin key")


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                              409: {"model": ErrorBody}})


@router.get("/bundles", response_model=BundleList, summary="Bundles on disk and loaded models")
async def list_bundles(request: Request) -> Response:
    svc = services(request)
    loop = asyncio.get_running_loop()
    bundles = await loop.run_in_executor(svc.io_pool, svc.registry.bundles)
    return json_response({**svc.registry.status(), "bundles": bundles})


async def _swap(request: Request, action: str, version: str | None) -> Response:
    svc = services(request)
    loop = asyncio.get_running_loop()
    previous = svc.registry.version
    if svc.cluster is not None:  # several workers: every one of them loads / swaps
        return await _cluster_swap(request, action, version)
    if action == "load":
        active = await loop.run_in_executor(svc.io_pool, svc.registry.load, version)
        log.info("model_loaded", version=active)
        return json_response({"request_id": request_id(request), "action": action,
                              "previous": previous, "active": svc.registry.version,
                              "loaded": active})
    fn = svc.registry.rollback if action == "rollback" else (
        lambda: svc.registry.promote(version))
    result = await loop.run_in_executor(svc.io_pool, fn)
    log.info("model_swapped", action=action, previous=result.previous, active=result.active)
    return json_response({"request_id": request_id(request), "action": action,
                          "previous": result.previous, "active": result.active})


async def _cluster_swap(request: Request, action: str, version: str | None) -> Response:
    svc = services(request)
    previous = svc.registry.version
    if action == "load":
        loaded = await svc.cluster.load(version)
        return json_response({"request_id": request_id(request), "action": action,
                              "previous": previous, "active": svc.registry.version,
                              "loaded": loaded})
    result = await (svc.cluster.rollback() if action == "rollback"
                    else svc.cluster.promote(version))
    log.info("model_swapped", action=action, previous=result.previous, active=result.active)
    return json_response({"request_id": request_id(request), "action": action,
                          "previous": result.previous, "active": result.active})


@router.post("/bundles/{version}/load", response_model=SwapAck,
             summary="Load a bundle fully without serving it yet")
async def load_bundle(version: Version, request: Request) -> Response:
    return await _swap(request, "load", version)


@router.post("/bundles/{version}/promote", response_model=SwapAck,
             summary="Serve a bundle (loads it first if needed); atomic swap, no dropped "
                     "requests")
async def promote_bundle(version: Version, request: Request) -> Response:
    return await _swap(request, "promote", version)


@router.post("/rollback", response_model=SwapAck, summary="Serve the previous model again")
async def rollback(request: Request) -> Response:
    return await _swap(request, "rollback", None)
