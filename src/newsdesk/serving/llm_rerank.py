"""The optional LLM re-ranking stage of `POST /v1/recommendations` (see llm/rerank.py).

Off unless a surface is named in `NEWSDESK_LLM_RERANK_SURFACES` (comma-separated, e.g.
"newsletter"): a surface that can afford `NEWSDESK_LLM_RERANK_BUDGET_MS` more latency. It runs
after the fallback chain, only on a personalised slate, only while the global LLM switch is on,
and never longer than the budget: on timeout, error or an invalid answer the ranker's order
stands. The response then carries `"llm_rerank": {"applied": ..., "reason": ...}` and
`newsdesk_llm_rerank_total{reason}` counts the outcomes.

With the packaged 135M model on a CPU a call takes seconds (benchmarks/llm_rerank.py), so no
front page can afford it; the stage is for a slow surface or a faster (remote) model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsdesk.llm.rerank import LLMReranker
from newsdesk.models.base import RequestContext, ScoredArticle


class RerankSettings(BaseSettings):
    """`NEWSDESK_LLM_RERANK_<FIELD>`; refused at first use when out of range."""

    model_config = SettingsConfigDict(env_prefix="NEWSDESK_LLM_RERANK_", extra="ignore",
                                      frozen=True)
    surfaces: str = ""  # comma-separated surface names; empty: the stage is off
    budget_ms: int = Field(default=300, gt=0, le=10_000)
    top_n: int = Field(default=5, ge=2, le=20)

    @field_validator("surfaces")
    @classmethod
    def _names(cls, v: str) -> str:
        return ",".join(s.strip() for s in v.split(",") if s.strip())

    @property
    def surface_set(self) -> frozenset[str]:
        return frozenset(self.surfaces.split(",")) if self.surfaces else frozenset()


class RerankStage:
    def __init__(self, settings: RerankSettings, registry: Any) -> None:
        self.settings = settings
        self.reranker: LLMReranker | None = None
        self.outcomes = Counter("newsdesk_llm_rerank_total", "LLM re-ranking stage outcomes "
                                "(ok, timeout, error, invalid, disabled, too_few).",
                                ["reason"], registry=registry)

    def wants(self, surface: str) -> bool:
        return surface in self.settings.surface_set


def stage_of(app: Any) -> RerankStage | None:
    stage = getattr(app.state, "llm_rerank", None)
    if stage is None:
        settings = RerankSettings()
        if not settings.surface_set:
            app.state.llm_rerank = False
            return None
        stage = app.state.llm_rerank = RerankStage(settings, app.state.metrics.registry)
    return stage or None


async def maybe_rerank(app: Any, svc: Any, ctx: RequestContext, items: list[ScoredArticle],
                       model: Any, degraded: bool
                       ) -> tuple[list[ScoredArticle], dict[str, Any] | None]:
    """`items` re-ordered by the LLM when the stage applies, else unchanged (and None)."""
    stage = stage_of(app)
    if stage is None or not stage.wants(ctx.surface) or degraded:
        return items, None
    llm = getattr(app.state, "llm", None)
    ws = getattr(model, "ws", None)
    if llm is None or ws is None:
        return items, None
    if not llm.enabled:
        stage.outcomes.labels("disabled").inc()
        return items, {"applied": False, "reason": "disabled"}
    cat = ws.catalog
    titles = [cat.titles[cat.index[it.article_id]] if it.article_id in cat.index
              else it.article_id for it in items]

    def run() -> tuple[list[ScoredArticle], Any]:
        if stage.reranker is None:
            stage.reranker = LLMReranker(llm.provider(), top_n=stage.settings.top_n,
                                         budget_s=stage.settings.budget_ms / 1000.0)
        read = [cat.titles[cat.index[c.article_id]]
                for c in svc.store.user_clicks(ctx.user_id, limit=5) if c.article_id in cat.index]
        return stage.reranker.apply(items, titles, read)

    budget = stage.settings.budget_ms / 1000.0
    try:
        # the reranker enforces the budget itself; this bound also covers a slow store read
        # or the model's first load (which then times out: the ranker's order stands)
        new, res = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(svc.io_pool, run), budget + 0.05)
    except TimeoutError:
        stage.outcomes.labels("timeout").inc()
        return items, {"applied": False, "reason": "timeout"}
    except Exception:
        stage.outcomes.labels("error").inc()
        return items, {"applied": False, "reason": "error"}
    stage.outcomes.labels(res.reason).inc()
    return new, {"applied": res.applied, "reason": res.reason}
