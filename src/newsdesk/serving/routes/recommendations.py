"""POST /v1/recommendations: a ranked slate for a user or an anonymous session."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from newsdesk.errors import BundleError, InvalidInput
from newsdesk.llm.explanations import resolve_lang
from newsdesk.models.base import RequestContext
from newsdesk.serving.app import Services, services
from newsdesk.serving.explain import add_explanations
from newsdesk.serving.live_experiments import serve_slate
from newsdesk.serving.llm_rerank import maybe_rerank
from newsdesk.serving.routes._common import json_response, render_items, request_id
from newsdesk.serving.routes.headlines import decorate as decorate_headlines
from newsdesk.serving.schemas import ErrorBody, RecommendationRequest, RecommendationResponse
from newsdesk.serving.variants import Assignment, resolve_model

router = APIRouter(prefix="/v1", tags=["recommendations"])


@router.post(
    "/recommendations", response_model=RecommendationResponse,
    responses={422: {"model": ErrorBody}, 413: {"model": ErrorBody}},
    summary="Recommend k articles",
    description="Ranked articles with scores and a reason each. The served slate is logged as "
                "an impression under the returned request_id; send clicks with that id. "
                "`degraded` is true when the personalised model could not answer in time and "
                "the slate came from the fallbacks (trending, then latest articles).",
)
async def recommend(body: RecommendationRequest, request: Request) -> Response:
    started = time.perf_counter()
    svc = services(request)
    rid = request_id(request)
    unit = body.user_id if body.user_id is not None else f"session:{body.session_id}"
    if body.user_id is not None and body.user_id in request.app.state.erasures:
        # an erased reader is served like a stranger: no state, no trained factors, and the
        # exposure log holds a pseudonym, not the id (data/erasure.py)
        unit = "erased:" + request.app.state.pseudonymise(body.user_id)
    assignment = svc.assigner.assign(unit, body.surface)
    try:
        return await _serve(svc, request, body, rid, unit, assignment, started)
    except Exception as exc:
        # a 5xx of an experiment's variant counts against its error-rate guardrail
        # (serving/variant_errors.py); the handlers / middleware turn the exception into the
        # response. Client errors (422, 409, 4xx) are not the variant's failure.
        client_error = isinstance(exc, (InvalidInput, BundleError)) or (
            isinstance(exc, HTTPException) and exc.status_code < 500)
        errors = getattr(request.app.state, "variant_errors", None)
        if errors is not None and assignment.experiment is not None and not client_error:
            errors.record(assignment.experiment, assignment.variant)
        raise


async def _serve(svc: Services, request: Request, body: RecommendationRequest, rid: str,
                 unit: str, assignment: Assignment, started: float) -> Response:
    model = resolve_model(assignment, svc.registry)  # None: the active model
    # one value travels as a plain string (the model contract's {"category": "sports"}),
    # several as a list
    filters = {name: value[0] if len(value) == 1 else value
               for name, value in (("category", body.filters.category),
                                   ("language", body.filters.language)) if value}
    now = svc.clock()
    ctx = RequestContext(
        user_id=unit, now=now, surface=body.surface, k=body.k,
        current_article_id=body.context.current_article_id, locale=body.context.locale,
        device=body.context.device, exclude=frozenset(body.filters.exclude), filters=filters,
    )
    # exploration applies to production traffic only: experiments keep their own designs
    plan = (svc.explorer.plan(rid, body.surface) if assignment.experiment is None
            else None)  # None: deterministic (most requests)
    if plan is not None:  # a Plackett-Luce draw from a larger pool of the ranker's items
        ctx = dataclasses.replace(ctx, k=plan.pool_size(body.k))
    # interleaving / bandit experiments decide the slate or the variant per request
    result, assignment, extra = await serve_slate(svc, ctx, assignment, rid, model)
    served_model = model or (svc.registry.get(result.model_version)
                             if result.model_version else None)
    rerank_info = None
    if not extra:  # a live experiment's slate (interleaving, bandit) is never re-ordered
        result.items, rerank_info = await maybe_rerank(request.app, svc, ctx, result.items,
                                                       served_model, result.degraded)
    if result.degraded:
        svc.metrics.degraded.labels("recommendations").inc()
    served = svc.explorer.serve(result.items, body.k, plan,
                                result.stages.get("personalised", 0))
    result.items = served.items
    ids = [it.article_id for it in result.items]
    if ids:
        # per position: P(that item at that position | policy); 1.0 when deterministic
        svc.exposure.offer(rid, unit, body.surface, ids, assignment.variant,
                           assignment.experiment, now, served.propensities,
                           policy=served.policy, degraded=result.degraded,
                           latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
                           **extra)
        svc.metrics.record_slate(body.surface, assignment.variant, len(ids))
    request.app.state.monitor.on_slate(rid, body.surface, assignment.variant,
                                       result.model_version, ids, result.degraded, svc.catalog)
    items = render_items(result.items)
    decorate_headlines(items, request.app, rid)  # running headline tests (a bandit per item)
    if body.explain:
        add_explanations(items, svc, ctx, result.items, served_model,
                         resolve_lang(body.lang, body.context.locale))
    body_out: dict[str, Any] = {
        "request_id": rid, "model_version": result.model_version,
        "experiment": assignment.experiment, "variant": assignment.variant,
        "degraded": result.degraded, "items": items,
    }
    if rerank_info is not None:
        body_out["llm_rerank"] = rerank_info
    return json_response(body_out)
