"""Admin: the global LLM switch and the LLM layer's state.

    GET /v1/admin/llm           switch (effective, setting, runtime flag), provider, model,
                                breaker, today's calls and estimated cost, enrichment queue
    PUT /v1/admin/llm/switch    {"enabled": false} turns every LLM feature off in every worker
                                (within the switch's refresh, 0.5 s), without a restart
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.routes._common import json_response
from newsdesk.serving.routes.admin import require_admin

log = get_logger("newsdesk.serving.llm")
router = APIRouter(prefix="/v1/admin/llm", tags=["admin"], dependencies=[Depends(require_admin)])


class SwitchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


def llm_service(request: Request) -> Any:
    service = getattr(request.app.state, "llm", None)
    if service is None:
        raise HTTPException(503, "the LLM layer is not running")
    return service


@router.get("", summary="State of the LLM layer")
async def llm_status(request: Request) -> Response:
    return json_response(llm_service(request).status())


@router.put("/switch", summary="Turn every LLM feature on or off (all workers, no restart)")
async def llm_switch(body: SwitchBody, request: Request) -> Response:
    service = llm_service(request)
    effective = service.set_enabled(body.enabled)
    log.warning("llm_switch", enabled=body.enabled, effective=effective)
    return json_response({**service.status(), "requested": body.enabled})
