"""The recommend path: a latency budget, per-stage timeouts and a fallback chain.

    personalised (the active model)  ->  trending (online store)  ->  editorial (latest live)

Each stage fills what the previous ones left: the response has k items whenever the catalog
has k live articles that pass the request's filters. A stage that fails (error, timeout,
circuit open, or shed because too many model calls are in flight) is skipped; if the
personalised stage failed the response is flagged `degraded`. Every item is checked against
the serving catalog, so a deleted or expired article never leaves the API even if a model
still holds it.

Timeouts: a stage gets min(its own timeout, what is left of the request budget). The model runs
in a bounded thread pool so that a timeout can be enforced (the late thread finishes in the
background and its slot is freed only then — a slow model sheds load instead of piling up
threads). `inline_model=True` calls the model on the event loop instead (no thread hop; the
timeout is then only measured) — the benchmark compares the two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from newsdesk.errors import StoreUnavailable
from newsdesk.features.dismissals import read_dismissals
from newsdesk.features.online_store import OnlineStore
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle
from newsdesk.monitoring.logging import get_logger
from newsdesk.monitoring.metrics import ServingMetrics
from newsdesk.serving.catalog import LiveCatalog, matches
from newsdesk.serving.model_registry import ModelRegistry

T = TypeVar("T")
log = get_logger("newsdesk.serving.pipeline")


class StageShed(Exception):
    """The stage was skipped because its bounded pool is full."""


@dataclass(frozen=True)
class PipelineConfig:
    budget_s: float = 0.150
    personalised_timeout_s: float = 0.120
    trending_timeout_s: float = 0.025
    inline_model: bool = False
    max_inflight: int = 32


@dataclass
class PipelineResult:
    items: list[ScoredArticle]
    model_version: str | None
    degraded: bool = False
    stages: dict[str, int] = field(default_factory=dict)  # stage -> items it contributed


class _Slate:
    """Collects items from the stages: unique, live, allowed, at most k."""

    def __init__(self, ctx: RequestContext, catalog: LiveCatalog) -> None:
        self.ctx = ctx
        self.catalog = catalog
        self.items: list[ScoredArticle] = []
        self._seen: set[str] = set(ctx.exclude)
        if ctx.current_article_id:
            self._seen.add(ctx.current_article_id)
        self._check_filters = bool(ctx.filters)

    def skip(self, article_ids: Iterable[str]) -> None:
        """Never offer these (a reader's dismissals)."""
        self._seen.update(article_ids)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.ctx.k

    def offer(self, items: Iterable[ScoredArticle]) -> int:
        added = 0
        for item in items:
            if self.full:
                break
            aid = item.article_id
            if aid in self._seen:
                continue
            entry = self.catalog.get(aid)
            if entry is None or not self.catalog.is_live(aid, self.ctx.now):
                continue
            if self._check_filters and not matches(entry, self.ctx.filters):
                continue
            self._seen.add(aid)
            self.items.append(item)
            added += 1
        return added


class RecommendPipeline:
    """Runs one recommendation request through the fallback chain (see module docstring)."""

    def __init__(self, registry: ModelRegistry, store: OnlineStore | None, catalog: LiveCatalog,
                 metrics: ServingMetrics, executor: Executor, config: PipelineConfig) -> None:
        self.registry = registry
        self.store = store
        self.catalog = catalog
        self.metrics = metrics
        self.executor = executor
        self.config = config
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        # seconds spent in stages, summed (only the event loop adds): its rate is how busy
        # the recommend path is (serving/load_signal.py lets background work yield to it)
        self.stage_seconds = 0.0

    # -- stage runner ----------------------------------------------------------------------
    async def _in_pool(self, fn: Callable[[], T], timeout: float) -> T:
        with self._inflight_lock:
            if self._inflight >= self.config.max_inflight:
                raise StageShed()
            self._inflight += 1

        def release(_: object) -> None:
            with self._inflight_lock:
                self._inflight -= 1

        cfut = self.executor.submit(fn)  # type: ignore[arg-type]
        cfut.add_done_callback(release)
        return await asyncio.wait_for(asyncio.wrap_future(cfut), timeout)

    async def _stage(self, name: str, fn: Callable[[], T], timeout: float, inline: bool
                     ) -> T | None:
        start = time.perf_counter()
        reason = None
        try:
            if inline:
                return fn()
            return await self._in_pool(fn, max(timeout, 0.001))
        except TimeoutError:
            reason = "timeout"
        except StageShed:
            reason = "shed"
        except StoreUnavailable as exc:
            reason = "circuit_open" if type(exc).__name__ == "CircuitOpen" else "unavailable"
        except Exception as exc:  # a model bug must not fail the request: fall back
            reason = "error"
            log.warning("stage_failed", stage=name, error=f"{type(exc).__name__}: {exc}")
        finally:
            elapsed = time.perf_counter() - start
            self.stage_seconds += elapsed
            self.metrics.stage_latency.labels(name).observe(elapsed)
        self.metrics.stage_failures.labels(name, reason).inc()
        return None

    # -- the chain ---------------------------------------------------------------------------
    async def recommend(self, ctx: RequestContext, model: Recommender | None = None
                        ) -> PipelineResult:
        """Up to ctx.k items for the request; `model` overrides the active one (experiments)."""
        return (await self.recommend_each(ctx, (model,)))[0]

    async def recommend_each(self, ctx: RequestContext,
                             models: Sequence[Recommender | None]) -> list[PipelineResult]:
        """One result per model (None: the active one), ranked in ONE personalised stage.

        Interleaving ranks a request with two bundles: one pool job runs both models one after
        the other, so the request waits for the pool once and shares one deadline and one read
        of the reader's dismissals, instead of queueing twice behind the other requests. If
        the stage fails, every result falls back (and is flagged degraded).
        """
        deadline = time.perf_counter() + self.config.budget_s
        active = self.registry.active if self.registry.ready else None  # read once: a swap
        resolved = [m if m is not None else active for m in models]  # does not split a request
        slates = [_Slate(ctx, self.catalog) for _ in resolved]
        results = [PipelineResult(items=slate.items, model_version=m.version if m else None)
                   for slate, m in zip(slates, resolved, strict=True)]
        got = None
        if any(m is not None for m in resolved):
            # over-fetch a little: some items may be filtered out by the catalog check
            want = dataclasses.replace(ctx, k=ctx.k + 10)
            store = self.store

            def personalised() -> tuple[list[list[ScoredArticle] | None], list[Any]]:
                ranked = [m.recommend(want) if m is not None else None for m in resolved]
                # any model: the reader's dismissals never reach the slate (NewsRecommender
                # also leaves them out of its candidates and demotes what resembles them)
                if store is None or all(m is None or getattr(m, "handles_dismissals", False)
                                        for m in resolved):
                    return ranked, []
                return ranked, read_dismissals(store, ctx.user_id)

            got = await self._stage(
                "personalised", personalised,
                min(self.config.personalised_timeout_s, deadline - time.perf_counter()),
                self.config.inline_model,
            )
        for i, (slate, result) in enumerate(zip(slates, results, strict=True)):
            items = got[0][i] if got is not None else None
            if items is not None:
                slate.skip(d.article_id for d in got[1])  # type: ignore[index]
                self.metrics.candidates.labels("personalised").observe(len(items))
                result.stages["personalised"] = slate.offer(items)
            await self._fill(slate, result, deadline, reason_prefix="")
            result.degraded = items is None
        return results

    async def related(self, article_id: str, k: int, now: float) -> PipelineResult:
        entry = self.catalog.get(article_id)
        filters: dict[str, Any] = {"category": entry.category} if entry else {}
        ctx = RequestContext(user_id="-", now=now, surface="article_page", k=k,
                             current_article_id=article_id, filters=filters)
        deadline = time.perf_counter() + self.config.budget_s
        slate = _Slate(ctx, self.catalog)
        result = PipelineResult(items=slate.items, model_version=None)
        primary_ok = False
        if self.registry.ready:
            model = self.registry.active
            result.model_version = model.version
            items = await self._stage(
                "related", lambda: model.related(article_id, k + 10, now),
                min(self.config.personalised_timeout_s, deadline - time.perf_counter()),
                self.config.inline_model,
            )
            if items is not None:
                primary_ok = True
                slate._check_filters = False  # the model's related items may cross categories
                result.stages["related"] = slate.offer(items)
                slate._check_filters = bool(filters)
        await self._fill(slate, result, deadline, reason_prefix="more in ")
        result.degraded = not primary_ok
        return result

    async def _fill(self, slate: _Slate, result: PipelineResult, deadline: float,
                    reason_prefix: str) -> None:
        ctx = slate.ctx
        if not slate.full and self.store is not None:
            store = self.store
            n = 3 * ctx.k + len(ctx.exclude) + 10
            got = await self._stage(
                "trending", lambda: (store.trending(n, ctx.now),
                                     read_dismissals(store, ctx.user_id)),
                min(self.config.trending_timeout_s, deadline - time.perf_counter()), False,
            )
            trending = None
            if got is not None:  # the reader's dismissals stay out of the fallbacks too
                trending, dismissed = got
                slate.skip(d.article_id for d in dismissed)
            if trending:
                added = slate.offer(
                    ScoredArticle(aid, float(score), "trending now", "trending")
                    for aid, score in trending
                )
                if added:
                    result.stages["trending"] = added
                    self.metrics.fallbacks.labels("trending").inc()
        if not slate.full:
            start = time.perf_counter()
            added = slate.offer(
                ScoredArticle(e.article_id, 0.0, "latest news", "editorial")
                for e in _take(self.catalog.latest(ctx.now), slate)
            )
            self.metrics.stage_latency.labels("editorial").observe(time.perf_counter() - start)
            if added:
                result.stages["editorial"] = added
                self.metrics.fallbacks.labels("editorial").inc()


def _take(entries: Iterable[Any], slate: _Slate) -> Iterable[Any]:
    for e in entries:
        if slate.full:
            return
        yield e

