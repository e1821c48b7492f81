"""`explain=true` on a recommendation request: an `explanation` and its `signals` per item.

Opt-in and cheap (templates over the item's signals, no LLM; see `llm/explanations.py`). It
runs after the slate is final, so it never changes what is served; if collecting the signals
fails (a store error, say), the items go out without explanations and a metric counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from newsdesk.llm.explanations import Explainer, Lang
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.serving.explain")


def explainer_for(svc: Any) -> Explainer:
    """One explainer per service set (kept on it): the store and the serving catalog."""
    exp = getattr(svc, "_explainer", None)
    if exp is None:
        catalog = svc.catalog

        def category_of(aid: str) -> str | None:
            entry = catalog.get(aid)
            return entry.category if entry is not None else None

        def published_of(aid: str) -> float | None:
            entry = catalog.get(aid)
            return entry.published_ts if entry is not None else None

        exp = Explainer(svc.store, category_of=category_of, published_of=published_of)
        svc._explainer = exp
    return exp


def add_explanations(items: list[dict[str, Any]], svc: Any, ctx: RequestContext,
                     scored: Sequence[ScoredArticle], model: Recommender | None,
                     lang: Lang) -> None:
    """Sets `explanation` and `signals` on each rendered item (in place)."""
    try:
        explanations = explainer_for(svc).explain(ctx, scored, model, lang)
    except Exception as exc:  # explanations are decoration: never fail the slate for them
        log.warning("explain_failed", error=f"{type(exc).__name__}: {exc}")
        svc.metrics.stage_failures.labels("explain", "error").inc()
        return
    for item, exp in zip(items, explanations, strict=True):
        item["explanation"] = exp.text
        item["signals"] = [s.code for s in exp.signals]
