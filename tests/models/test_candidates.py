"""Candidate generators on small data, including users and articles never seen in training."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from newsdesk.content import Embedder
from newsdesk.data.schema import Article
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.ranking_features import FeatureBuilder, RankingInputs
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import load_recommender
from newsdesk.models.candidates import (
    CategoryGenerator,
    CoClickGenerator,
    CollaborativeGenerator,
    ContentGenerator,
    RecencyGenerator,
    TrendingGenerator,
    Workspace,
)
from newsdesk.models.candidates.base import top_n
from newsdesk.models.catalog import ArticleCatalog
from newsdesk.models.pipeline import NewsRecommender

NOW = 1_800_000_000.0
TOPICS = {
    "sports": ["Local team wins the football cup final", "Tennis star reaches the semifinal",
               "Marathon record broken in the city"],
    "politics": ["Parliament passes the new budget law", "Election campaign enters final week",
                 "Minister resigns after the vote"],
    "science": ["Telescope finds a distant galaxy", "New battery chemistry doubles capacity",
                "Vaccine trial shows strong results"],
}


def _articles() -> list[Article]:
    out, n = [], 0
    for cat, titles in TOPICS.items():
        for title in titles:
            out.append(Article(article_id=f"x{n}", title=title, category=cat,
                               published_at=datetime.fromtimestamp(NOW - 3600 * (n + 1), UTC)))
            n += 1
    return out


@pytest.fixture(scope="module")
def ws(embedder: Embedder) -> Workspace:
    catalog = ArticleCatalog(embedder.dim)
    catalog.upsert(_articles(), embedder)
    store = MemoryOnlineStore(half_life_hours=6.0)
    store.record_impressions([f"x{i}" for i in range(9)], NOW - 600)
    store.record_clicks("reader", ["x0", "x1"], NOW - 500)  # sports fan; x1 is newest
    store.record_clicks("other", ["x6", "x0", "x1"], NOW - 400)
    return Workspace(catalog, store, FeatureBuilder(), max_age_hours=72.0)


def _fit_static(ws: Workspace) -> tuple[CoClickGenerator, CollaborativeGenerator]:
    # two sessions of user 0 (x0 -> x1, then much later x6), user 1 clicks x0 and x2
    user = np.array([0, 0, 0, 1, 1])
    art = np.array([0, 1, 6, 0, 2])
    ts = np.array([0.0, 60.0, 90_000.0, 0.0, 30.0])
    co = CoClickGenerator(ws).fit(user, art, ts, ws.catalog.size)
    cf = CollaborativeGenerator(ws, factors=4, iterations=5).fit(["reader", "other"], user,
                                                                 art, ws.catalog.size)
    return co, cf


def test_every_generator_handles_known_and_unknown_users(ws: Workspace) -> None:
    co, cf = _fit_static(ws)
    gens = [TrendingGenerator(ws), RecencyGenerator(ws), ContentGenerator(ws), co, cf,
            CategoryGenerator(ws)]
    for g in gens:
        for user in ("reader", "brand-new-user"):
            out = g.candidates(RequestContext(user_id=user, now=NOW), 5)
            assert len(out) <= 5
            assert all(o.source == g.name for o in out)
            assert all(o.article_id in ws.catalog.index for o in out)
            assert [o.score for o in out] == sorted((o.score for o in out), reverse=True)
            if g.name in ("trending", "recency", "category") or user == "reader":
                assert out, (g.name, user)  # cold users still get trending + exploration
    new_user = CategoryGenerator(ws).candidates(RequestContext(user_id="nobody", now=NOW), 3)
    assert all(o.reason.startswith("something new in") for o in new_user)


def test_generator_specifics(ws: Workspace) -> None:
    view = ws.view("reader", NOW)
    cat = ws.catalog
    trending, _ = TrendingGenerator(ws).propose(view, 3)
    assert set(trending.tolist()) == {0, 1, 6}  # the only clicked articles
    recent, _ = RecencyGenerator(ws).propose(view, 2)
    assert recent.tolist() == [0, 1]  # x0 is the newest article
    content, _ = ContentGenerator(ws).propose(view, 3)
    assert {cat.category_name(i) for i in content} == {"sports"}
    fav, _ = CategoryGenerator(ws).propose(view, 3)
    assert {cat.category_name(i) for i in fav} == {"sports"}
    reason = ContentGenerator(ws).reason(view, 2)
    assert reason.startswith("because you read ")


def test_coclick_counts_session_pairs_only(ws: Workspace) -> None:
    co, _ = _fit_static(ws)
    co.online_weight = 0.0  # the trained counts alone (the fixture's store has online ones)
    m = co.matrix_.toarray()
    assert m[0, 1] == m[1, 0] == 1 and m[0, 2] == 1
    assert m[1, 6] == 0 and m[0, 6] == 0  # x6 came 25 h later: another session
    n, _ = co.neighbours(0, np.arange(9), 5)
    assert set(n.tolist()) == {1, 2}
    inputs = RankingInputs(
        click_idx=np.array([[0, -1], [6, -1]]), click_ts=np.full((2, 2), NOW),
        user_ids=["a", "b"], row_query=np.array([0, 0, 1]), row_article=np.array([1, -1, 1]),
        now=np.full(3, NOW), position=np.zeros(3), stats=np.zeros((3, 4)))
    np.testing.assert_allclose(co.pair_scores(inputs), [1.0, 0.0, 0.0])


def test_collaborative_folds_in_unknown_users(ws: Workspace) -> None:
    _, cf = _fit_static(ws)
    known = cf.user_vectors(["reader"], np.full((1, 3), -1))
    assert np.abs(known).sum() > 0
    folded = cf.user_vectors(["stranger"], np.array([[0, 1, -1]]))
    np.testing.assert_allclose(folded[0], cf.item_factors_[[0, 1]].mean(axis=0), rtol=1e-6)
    empty = cf.user_vectors(["stranger"], np.full((1, 3), -1))
    assert not empty.any()


def test_new_articles_reach_users_without_any_click(ws: Workspace, embedder: Embedder) -> None:
    fresh = Article(article_id="fresh", title="Football club wins the league title",
                    category="sports", published_at=datetime.fromtimestamp(NOW - 60, UTC))
    ws.catalog.upsert([fresh], embedder)
    try:
        view = ws.view("reader", NOW)
        i = ws.catalog.index["fresh"]
        assert RecencyGenerator(ws).propose(view, 1)[0].tolist() == [i]
        assert i in ContentGenerator(ws).propose(view, 4)[0]
        assert i not in TrendingGenerator(ws).propose(view, 10)[0]  # no clicks yet
        co, cf = _fit_static(ws)  # models fitted before the article existed: no error
        assert i not in co.propose(view, 10)[0]
        assert i not in cf.propose(view, 10)[0]
    finally:
        ws.catalog.remove("fresh")
    assert ws.catalog.index["fresh"] not in ws.catalog.live_indices(NOW)


def test_top_n_is_sorted_and_deterministic() -> None:
    idx = np.array([5, 3, 9, 1])
    s = np.array([0.5, 0.9, 0.5, 0.1])
    i, v = top_n(idx, s, 3)
    assert i.tolist() == [3, 5, 9] and v.tolist() == [0.9, 0.5, 0.5]
    assert top_n(idx[:0], s[:0], 3)[0].size == 0


def test_quotas_bound_the_candidate_pool(bundle_dir: Path, embedder: Embedder) -> None:
    rec: NewsRecommender = load_recommender(bundle_dir, MemoryOnlineStore(), embedder=embedder)
    t = float(rec.ws.catalog.published[: rec.ws.catalog.size].max())
    view = rec.ws.view("u1", t)
    pool, sources = rec.candidate_pool(view)
    assert len(pool) == len(set(pool.tolist())) == len(sources)
    assert len(pool) <= sum(rec.quotas.values())
    assert set(sources) <= {g.name for g in rec.generators}
