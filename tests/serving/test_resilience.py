"""Fallback chain, circuit breaker, a real Redis dying mid-test, and the generic 500."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from newsdesk.data.schema import Article
from newsdesk.errors import StoreUnavailable
from newsdesk.features import open_online_store
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle
from newsdesk.serving.app import create_app
from newsdesk.serving.resilience import CircuitBreaker, CircuitOpen
from newsdesk.serving.variants import Assignment
from tests.serving.conftest import ctr_factory, make_settings, running

pytestmark = pytest.mark.anyio


class BrokenModel(Recommender):
    """A test double injected as the model: fails or stalls on every call."""

    def __init__(self, version: str, *, delay_s: float = 0.0) -> None:
        self.version = version
        self.delay_s = delay_s

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        if self.delay_s:
            time.sleep(self.delay_s)
            return []
        raise RuntimeError("model exploded")

    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        raise RuntimeError("model exploded")

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model exploded")

    def upsert_articles(self, articles: Sequence[Article]) -> None:
        pass

    def remove_article(self, article_id: str) -> bool:
        return False


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_circuit_breaker_opens_fails_fast_and_recovers() -> None:
    clock = Clock()
    changes: list[str] = []
    breaker = CircuitBreaker("s", failure_threshold=3, reset_s=2.0, clock=clock,
                             on_change=lambda name, state: changes.append(state))
    calls = []

    def down() -> None:
        calls.append(1)
        raise StoreUnavailable("down")

    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            breaker.call(down)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.call(down)
    assert len(calls) == 3  # the open breaker did not call the backend
    clock.t = 2.5
    assert breaker.state == "half_open"
    with pytest.raises(StoreUnavailable):
        breaker.call(down)  # the trial fails: open again
    assert breaker.state == "open"
    clock.t = 5.0
    assert breaker.call(lambda: 42) == 42
    assert breaker.state == "closed"
    assert changes == ["open", "half_open", "open", "half_open", "closed"]


def test_os_errors_count_as_store_failures() -> None:
    breaker = CircuitBreaker("s", failure_threshold=1)

    def refused() -> None:
        raise ConnectionRefusedError("no")

    with pytest.raises(StoreUnavailable):
        breaker.call(refused)
    assert breaker.state == "open"


@pytest.mark.parametrize("delay_s", [0.0, 1.0])
async def test_fallback_chain_when_model_fails_or_stalls(tmp_path: Path, dataset_dir: Path,
                                                         delay_s: float) -> None:
    app = create_app(make_settings(tmp_path, dataset_dir, budget_ms=200,
                                   personalised_timeout_ms=100),
                     recommender_factory=lambda v, s: BrokenModel(v or "broken",
                                                                  delay_s=delay_s))
    async with running(app) as client:
        start = time.perf_counter()
        r = await client.post("/v1/recommendations", json={"user_id": "u", "k": 10})
        elapsed = time.perf_counter() - start
        body = r.json()
        assert r.status_code == 200 and body["degraded"] is True
        assert len(body["items"]) == 10
        # nothing clicked yet: trending is empty, the editorial list (newest first) fills in
        assert [it["source"] for it in body["items"]] == ["editorial"] * 10
        assert [it["article_id"] for it in body["items"]] == [f"a{i:03d}" for i in range(10)]
        assert elapsed < 0.6  # the stalled model did not hold the request
        metrics = (await client.get("/metrics")).text
        reason = "timeout" if delay_s else "error"
        line = ('newsdesk_pipeline_stage_failures_total'
                f'{{reason="{reason}",stage="personalised"}} 1.0')
        assert line in metrics
        assert 'newsdesk_degraded_responses_total{endpoint="recommendations"} 1.0' in metrics
        rel = await client.get("/v1/articles/a003/related", params={"k": 3})
        assert rel.json()["degraded"] is True and len(rel.json()["items"]) == 3


async def test_trending_fills_when_model_fails(tmp_path: Path, dataset_dir: Path) -> None:
    app = create_app(make_settings(tmp_path, dataset_dir),
                     recommender_factory=lambda v, s: BrokenModel("broken"))
    async with running(app) as client:
        clicks = [{"type": "click", "event_id": f"e{i}", "user_id": f"u{i}",
                   "article_id": "a025"} for i in range(3)]
        await client.post("/v1/events", json={"events": clicks})
        body = (await client.post("/v1/recommendations", json={"user_id": "u", "k": 4})).json()
        assert body["items"][0]["article_id"] == "a025"
        assert body["items"][0]["source"] == "trending"
        assert [it["source"] for it in body["items"][1:]] == ["editorial"] * 3


@pytest.mark.redis
async def test_redis_stopped_mid_test_still_serves_k_items(
        tmp_path: Path, dataset_dir: Path, articles: list[Article], redis_process) -> None:  # noqa: ANN001
    url = redis_process.url
    app = create_app(make_settings(tmp_path, dataset_dir, online_store_url=url,
                                   breaker_failure_threshold=2, breaker_reset_s=30),
                     recommender_factory=ctr_factory(articles))
    assert open_online_store(url).ping()
    async with running(app) as client:
        ok = (await client.post("/v1/recommendations", json={"user_id": "u", "k": 8})).json()
        assert ok["degraded"] is False and len(ok["items"]) == 8
        click = {"type": "click", "event_id": "e0", "user_id": "u", "article_id": "a005"}
        assert (await client.post("/v1/events", json={"events": [click]})).json()["applied"]

        redis_process.kill()
        for i in range(5):
            start = time.perf_counter()
            r = await client.post("/v1/recommendations", json={"user_id": f"u{i}", "k": 8})
            assert r.status_code == 200
            body = r.json()
            assert body["degraded"] is True and len(body["items"]) == 8
            assert time.perf_counter() - start < 0.5
        assert (await client.get("/readyz")).status_code == 503
        # events are still logged durably; applying them to the dead store is reported
        click2 = {"type": "click", "event_id": "e1", "user_id": "u", "article_id": "a006"}
        ack = (await client.post("/v1/events", json={"events": [click2]})).json()
        assert ack["accepted"] == 1 and ack["applied"] is False
        metrics = (await client.get("/metrics")).text
        assert 'newsdesk_circuit_breaker_open{name="online_store"} 1.0' in metrics


async def test_unexpected_error_is_a_generic_500(tmp_path: Path, dataset_dir: Path,
                                                 articles: list[Article]) -> None:
    class ExplodingAssigner:
        def assign(self, unit_id: str, surface: str) -> Assignment:
            raise ZeroDivisionError("secret internal detail")

    app = create_app(make_settings(tmp_path, dataset_dir),
                     recommender_factory=ctr_factory(articles),
                     variant_assigner=ExplodingAssigner())
    async with running(app, raise_app_exceptions=False) as client:
        r = await client.post("/v1/recommendations", json={"user_id": "u"})
        assert r.status_code == 500
        body = r.json()
        assert body["error"] == "internal_error" and body["request_id"] == r.headers[
            "x-request-id"]
        assert "secret" not in r.text and "Traceback" not in r.text


async def test_excess_model_calls_are_shed_to_the_fallbacks(tmp_path: Path,
                                                            dataset_dir: Path) -> None:
    import asyncio

    app = create_app(make_settings(tmp_path, dataset_dir, max_inflight_model_calls=1,
                                   budget_ms=1000, personalised_timeout_ms=900),
                     recommender_factory=lambda v, s: BrokenModel("slow", delay_s=0.3))
    async with running(app) as client:
        start = time.perf_counter()
        first = asyncio.create_task(client.post("/v1/recommendations", json={"user_id": "a"}))
        await asyncio.sleep(0.05)  # the first call now holds the only model slot
        second = await client.post("/v1/recommendations", json={"user_id": "b", "k": 5})
        assert time.perf_counter() - start < 0.25  # shed at once, not queued behind it
        assert second.json()["degraded"] is True and len(second.json()["items"]) == 5
        await first
        metrics = (await client.get("/metrics")).text
        assert 'newsdesk_pipeline_stage_failures_total{reason="shed",stage="personalised"} 1.0' \
            in metrics


def test_guarded_store_passes_the_row_handles_through() -> None:
    """The model's fast path (resolve ids to store rows once) must survive the breaker."""
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.serving.resilience import CircuitBreaker, GuardedOnlineStore

    inner = MemoryOnlineStore()
    inner.record_impressions(["a", "b"], 10.0)
    inner.record_clicks("u", ["b"], 20.0)
    guarded = GuardedOnlineStore(inner, CircuitBreaker("t"))
    rows = guarded.article_rows(["b", "zz", "a"])
    assert rows is not None and rows.tolist()[1] == -1
    np.testing.assert_array_equal(guarded.stats_rows(rows, 30.0),
                                  guarded.stats_matrix(["b", "zz", "a"], 30.0))


class ListModel(BrokenModel):
    """Ranks a fixed list and records which thread ran it."""

    def __init__(self, version: str, ids: list[str]) -> None:
        super().__init__(version)
        self.ids = ids
        self.threads: list[int] = []

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        import threading

        self.threads.append(threading.get_ident())
        return [ScoredArticle(a, 1.0 - i / 100, "r", "m") for i, a in enumerate(self.ids)]


async def test_two_models_rank_one_request_in_one_stage(tmp_path: Path,
                                                        dataset_dir: Path) -> None:
    """Interleaving's two rankings: one pool job (one stage), each its own slate; a model that
    fails takes the stage down and both results fall back, flagged degraded."""
    app = create_app(make_settings(tmp_path, dataset_dir, budget_ms=1000,
                                   personalised_timeout_ms=900),
                     recommender_factory=lambda v, s: BrokenModel("broken"))
    async with running(app):
        pipeline = app.state.services.pipeline
        a = ListModel("va", ["a001", "a002", "a003"])
        b = ListModel("vb", ["a009", "a008", "a007"])
        ctx = RequestContext(user_id="u", now=app.state.services.clock(), k=3)
        stage = pipeline.metrics.stage_latency.labels("personalised")
        before = _count(stage)
        ra, rb = await pipeline.recommend_each(ctx, (a, b))
        assert [it.article_id for it in ra.items] == ["a001", "a002", "a003"]
        assert [it.article_id for it in rb.items] == ["a009", "a008", "a007"]
        assert (ra.model_version, rb.model_version) == ("va", "vb")
        assert not ra.degraded and not rb.degraded
        assert a.threads == b.threads and len(a.threads) == 1  # one job ran both
        assert _count(stage) == before + 1
        ra, rb = await pipeline.recommend_each(ctx, (a, BrokenModel("vx")))
        assert ra.degraded and rb.degraded
        assert [it.source for it in ra.items] == ["editorial"] * 3


def _count(histogram: object) -> float:
    return sum(b.get() for b in histogram._buckets)  # type: ignore[attr-defined]
