"""NewsRecommender: train/serve feature parity, re-ranking rules, cold start, related."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from newsdesk.content import Embedder
from newsdesk.data.schema import Article
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.replay import QueryRows, replay_inputs
from newsdesk.features.training_log import LogArrays, warm_store
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import load_recommender
from newsdesk.models.pipeline import NewsRecommender
from newsdesk.models.rerank import RerankConfig


@pytest.fixture(scope="module")
def warmed(bundle_dir: Path, embedder: Embedder, log: LogArrays, at_time: float
           ) -> NewsRecommender:
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=at_time)
    return load_recommender(bundle_dir, store, embedder=embedder)


def active_users(log: LogArrays, before: float, n: int) -> list[str]:
    ev = log.events
    counts = np.bincount(ev.click_user[ev.click_ts < before], minlength=len(ev.user_ids))
    return [ev.user_ids[u] for u in np.argsort(-counts, kind="stable")[:n]]


def test_training_features_equal_online_features(bundle_dir: Path, embedder: Embedder,
                                                 log: LogArrays) -> None:
    """Replayed (offline) features of logged impressions == the online path's, from a store
    that saw exactly the events before each impression."""
    t0, t1 = log.time_range
    imps = log.exposures.group_by("q", maintain_order=True).first()
    picks = []
    for frac in (0.35, 0.6, 0.9):  # impressions at three times, replayed in time order
        q = int(np.searchsorted(imps["ts"].to_numpy(), t0 + frac * (t1 - t0)))
        picks += [q, q + 1]
    store = MemoryOnlineStore(half_life_hours=6.0)
    rec = load_recommender(bundle_dir, store, embedder=embedder)
    since = None
    checked = 0
    for q in picks:
        rows = log.exposures.filter(log.exposures["q"] == q).sort("pos")
        t = float(rows["ts"][0])
        user = int(rows["ucode"][0])
        queries = QueryRows(query_user=np.array([user]), query_ts=np.array([t]),
                            row_query=np.zeros(len(rows), np.int64),
                            row_article=rows["aidx"].to_numpy().astype(np.int64),
                            row_position=rows["pos"].to_numpy().astype(np.float64))
        inputs = replay_inputs(log.events, queries, rec.ws.catalog.size, half_life_hours=6.0,
                               recent_clicks=rec.ws.builder.recent_clicks, bucket_seconds=1800)
        offline = rec.ws.builder.build(inputs, rec.ws.catalog, coclick=rec.coclick, cf=rec.cf)

        warm_store(store, log, until=t, since=since)  # advance the store to just before t
        since = t
        ids = [rec.ws.catalog.ids[a] for a in queries.row_article]
        ctx = RequestContext(user_id=log.events.user_ids[user], now=t)
        online = rec.features(ctx, ids, positions=queries.row_position)
        np.testing.assert_allclose(offline, online, rtol=1e-5, atol=1e-5)
        checked += int(online[:, 2].any())  # some articles had decayed clicks
    assert checked >= 3  # the comparison covered non-trivial article statistics


def test_recommend_returns_k_live_unread_with_reasons(warmed: NewsRecommender, log: LogArrays,
                                                      at_time: float) -> None:
    for user in active_users(log, at_time, 5):
        out = warmed.recommend(RequestContext(user_id=user, now=at_time, k=10))
        assert len(out) == 10
        ids = [o.article_id for o in out]
        assert len(set(ids)) == 10
        read = {c.article_id for c in warmed.ws.store.user_clicks(user)}
        assert not read & set(ids)
        cat = warmed.ws.catalog
        live = set(cat.live_indices(at_time).tolist())
        assert all(cat.index[a] in live for a in ids)
        assert all(o.reason and o.source for o in out)
        scores = [o.score for o in out]
        assert all(np.isfinite(scores))


def test_new_user_gets_trending_and_exploration(warmed: NewsRecommender,
                                                at_time: float) -> None:
    out = warmed.recommend(RequestContext(user_id="never-seen-user", now=at_time, k=10))
    assert len(out) == 10
    assert {o.source for o in out} <= {"trending", "recency", "category"}


def test_surface_rules(warmed: NewsRecommender, log: LogArrays, at_time: float) -> None:
    user = active_users(log, at_time, 1)[0]
    base = warmed.recommend(RequestContext(user_id=user, now=at_time, k=10))
    blocked = base[0].article_id
    cat = warmed.ws.catalog
    blocked_cat = cat.category_name(cat.index[base[1].article_id])
    warmed.serving.surfaces["capped"] = RerankConfig(category_cap=1, blocklist=[blocked])
    warmed.serving.surfaces["young"] = RerankConfig(max_age_hours=3.0,
                                                    blocked_categories=[blocked_cat])
    warmed.serving.surfaces["keep_read"] = RerankConfig(exclude_read=False)
    try:
        capped = warmed.recommend(RequestContext(user_id=user, now=at_time, k=10,
                                                 surface="capped"))
        cats = [cat.category_name(cat.index[o.article_id]) for o in capped]
        assert len(cats) == len(set(cats)) >= 3
        assert blocked not in {o.article_id for o in capped}
        young = warmed.recommend(RequestContext(user_id=user, now=at_time, k=10,
                                                surface="young"))
        assert young
        for o in young:
            i = cat.index[o.article_id]
            assert at_time - cat.published[i] <= 3 * 3600
            assert cat.category_name(i) != blocked_cat
        excluded = warmed.recommend(RequestContext(user_id=user, now=at_time, k=10,
                                                   exclude=frozenset({base[2].article_id})))
        assert base[2].article_id not in {o.article_id for o in excluded}
        # exclude_read: a just-clicked live article is gone from the default surface only
        clicked = base[3].article_id
        warmed.ws.store.record_clicks(user, [clicked], at_time)
        again = warmed.recommend(RequestContext(user_id=user, now=at_time + 1, k=40))
        assert clicked not in {o.article_id for o in again}
        kept = warmed.recommend(RequestContext(user_id=user, now=at_time + 1, k=200,
                                               surface="keep_read"))
        assert clicked in {o.article_id for o in kept}
    finally:
        for name in ("capped", "young", "keep_read"):
            warmed.serving.surfaces.pop(name, None)


def test_cold_start_article_reaches_users(warmed: NewsRecommender, log: LogArrays,
                                          at_time: float) -> None:
    """An article published now, with no clicks, comes back through recency and content."""
    user = active_users(log, at_time, 1)[0]
    last = warmed.ws.store.user_clicks(user)[0].article_id
    src = warmed.ws.catalog.titles[warmed.ws.catalog.index[last]]
    fresh = Article(article_id="fresh-1", title=src, abstract="", category="brand-new-cat",
                    published_at=datetime.fromtimestamp(at_time - 60, UTC))
    warmed.upsert_articles([fresh])
    try:
        view = warmed.ws.view(user, at_time)
        i = warmed.ws.catalog.index["fresh-1"]
        by_name = {g.name: g for g in warmed.generators}
        assert i in by_name["recency"].propose(view, 20)[0]
        warmed.ws.store.record_clicks("one-click-user", [last], at_time - 120)
        one = warmed.ws.view("one-click-user", at_time)
        assert i in by_name["content"].propose(one, 3)[0]
        pool, _ = warmed.candidate_pool(view)
        assert i in pool
        s = warmed.score(RequestContext(user_id=user, now=at_time), ["fresh-1", "unknown-id"])
        assert s.shape == (2,) and np.isfinite(s).all()
        related = warmed.related(last, 5, at_time)
        assert "fresh-1" in {r.article_id for r in related}  # same title: nearest neighbour
    finally:
        assert warmed.remove_article("fresh-1")
    assert not warmed.remove_article("fresh-1")
    assert "fresh-1" not in {o.article_id for o in warmed.related(last, 20, at_time)}
    out = warmed.recommend(RequestContext(user_id=user, now=at_time, k=50))
    assert "fresh-1" not in {o.article_id for o in out}


def test_related_is_live_and_excludes_itself(warmed: NewsRecommender, at_time: float) -> None:
    cat = warmed.ws.catalog
    live = cat.live_indices(at_time)
    aid = cat.ids[int(live[0])]
    out = warmed.related(aid, 8, at_time)
    assert 0 < len(out) <= 8
    assert aid not in {o.article_id for o in out}
    assert all(cat.index[o.article_id] in set(live.tolist()) for o in out)
    assert warmed.related("no-such-article", 5, at_time) == []
