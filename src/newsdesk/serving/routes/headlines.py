"""Admin: headline tests (see llm/headlines.py).

    POST   /v1/admin/headlines/{article_id}          start a test: given `variants`, or the
                                                     LLM proposes `n` (validated; invalid ones
                                                     dropped and counted)
    GET    /v1/admin/headlines/{article_id}          per variant: impressions, clicks, CTR with
                                                     a 95% interval, P(best); the winner
    POST   /v1/admin/headlines/{article_id}/promote  promote the current best now
    DELETE /v1/admin/headlines/{article_id}          stop the test (the original title stays)

While a test runs, `POST /v1/recommendations` adds `headline`, `headline_variant` and
`headline_propensity` to the tested article's item (the variant the bandit chose and the
probability it had), and clicks sent with the slate's request_id update the bandit. Tests live
in the serving process (one worker; with several workers each runs its own bandit on its share
of traffic, which still converges but splits the evidence: see docs/llm.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from newsdesk.errors import InvalidInput, LLMError
from newsdesk.llm.headlines import (
    MAX_VARIANTS,
    HeadlineTest,
    HeadlineTests,
    propose_headlines,
    validate_headline,
)
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.app import services
from newsdesk.serving.routes._common import json_response, request_id
from newsdesk.serving.routes.admin import require_admin
from newsdesk.serving.schemas import ErrorBody

log = get_logger("newsdesk.serving.headlines")
router = APIRouter(prefix="/v1/admin/headlines", tags=["admin"],
                   dependencies=[Depends(require_admin)])


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    title: str | None = Field(default=None, min_length=1, max_length=300,
                              description="the original headline (default: the catalog's)")
    abstract: str = Field(default="", max_length=5000)
    variants: list[str] | None = Field(default=None, min_length=1, max_length=MAX_VARIANTS,
                                       description="variants to test (default: LLM proposals)")
    n: int = Field(default=3, ge=1, le=MAX_VARIANTS)
    min_impressions: int = Field(default=500, ge=10)
    promote_at: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = 0


def headline_tests(app: Any) -> HeadlineTests:
    tests = getattr(app.state, "headline_tests", None)
    if tests is None:
        tests = app.state.headline_tests = HeadlineTests()
        app.state.headline_rejected = Counter(
            "newsdesk_llm_headline_rejected_total", "Proposed headline variants dropped by "
            "validation, by reason (length, new_entity, same_as_original, duplicate).",
            ["reason"], registry=app.state.metrics.registry)
    return tests


def decorate(items: list[dict[str, Any]], app: Any, rid: str) -> None:
    """Headline of each tested item in a served slate (in place); cheap when none runs."""
    tests = getattr(app.state, "headline_tests", None)
    if not tests:
        return
    for item in items:
        served = tests.serve(rid, item["article_id"])
        if served is not None:
            item["headline"] = served.text
            item["headline_variant"] = served.variant
            item["headline_propensity"] = served.propensity


def on_clicks(events: list[Any], app: Any) -> None:
    tests = getattr(app.state, "headline_tests", None)
    if not tests:
        return
    for ev in events:
        if getattr(ev, "type", None) == "click" and ev.request_id:
            tests.on_click(ev.request_id, ev.article_id)


def _title_of(request: Request, article_id: str) -> str | None:
    svc = services(request)
    model = svc.registry.active if svc.registry.ready else None
    cat = getattr(getattr(model, "ws", None), "catalog", None)
    if cat is not None and article_id in cat.index:
        return str(cat.titles[cat.index[article_id]])
    art = svc.catalog.upserted.get(article_id)
    return art.title if art is not None else None


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody},
    503: {"model": ErrorBody}}


@router.post("/{article_id}", summary="Start a headline test", responses=_ERRORS)
async def start(article_id: str, body: StartBody, request: Request) -> Response:
    tests = headline_tests(request.app)
    rejected_metric = request.app.state.headline_rejected
    title = body.title or _title_of(request, article_id)
    if title is None:
        raise HTTPException(404, f"article {article_id!r} is not in the catalog")
    rejected: list[dict[str, str]] = []
    if body.variants is not None:
        valid = []
        for text in body.variants:
            reason = validate_headline(text, title, body.abstract)
            if reason is None and text not in valid:
                valid.append(" ".join(text.split()))
            else:
                rejected.append({"headline": text, "reason": reason or "duplicate"})
                rejected_metric.labels(reason or "duplicate").inc()
        prompt_id = None
    else:
        llm = getattr(request.app.state, "llm", None)
        if llm is None or not llm.enabled:
            # the request needs a feature switched off: a conflict with the service's state
            # that the caller can resolve (give variants), not a server failure
            raise HTTPException(409, "field 'variants': the LLM layer is off: give `variants` "
                                     "or turn it on")
        provider = llm.provider()
        try:
            proposal = await asyncio.get_running_loop().run_in_executor(
                None, lambda: propose_headlines(
                    provider, title, body.abstract, n=body.n,
                    on_reject=lambda r: rejected_metric.labels(r).inc()))
        except LLMError as exc:
            raise HTTPException(503, f"the LLM could not propose headlines: {exc}") from exc
        valid, prompt_id = proposal.valid, proposal.prompt_id
        rejected = [{"headline": t, "reason": r} for t, r in proposal.rejected]
    if not valid:
        raise InvalidInput("field 'variants': no valid headline variant to test (see the "
                           f"rejected ones): {rejected}", field="variants")
    test = HeadlineTest(article_id, [title, *valid], seed=body.seed,
                        promote_at=body.promote_at, min_impressions=body.min_impressions)
    tests.start(test)
    log.info("headline_test_started", article_id=article_id, variants=len(valid))
    return json_response({"request_id": request_id(request), **test.report(),
                          "rejected": rejected, "prompt": prompt_id})


def _test(request: Request, article_id: str) -> HeadlineTest:
    test = headline_tests(request.app).tests.get(article_id)
    if test is None:
        raise HTTPException(404, f"no headline test for article {article_id!r}")
    return test


@router.get("/{article_id}", summary="A headline test's report", responses=_ERRORS)
async def report(article_id: str, request: Request) -> Response:
    return json_response({"request_id": request_id(request),
                          **_test(request, article_id).report()})


@router.post("/{article_id}/promote", summary="Promote the best variant now",
             responses=_ERRORS)
async def promote(article_id: str, request: Request) -> Response:
    test = _test(request, article_id)
    probs = test.p_best()
    test.winner = test.arms[int(probs.argmax())]
    return json_response({"request_id": request_id(request), **test.report()})


@router.delete("/{article_id}", summary="Stop a headline test")
async def stop(article_id: str, request: Request) -> Response:
    stopped = headline_tests(request.app).stop(article_id)
    return json_response({"request_id": request_id(request), "article_id": article_id,
                          "stopped": stopped})
