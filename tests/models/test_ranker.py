"""The learned ranker: it learns on simulated logs, beats trending, and saves losslessly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.errors import BundleError
from newsdesk.features.ranking_features import FEATURE_NAMES
from newsdesk.models.bundle import read_manifest
from newsdesk.models.ranker import LambdaRanker
from newsdesk.models.rerank import RerankConfig, select
from newsdesk.simulation import World


def test_ranker_beats_trending_on_held_out_time_slice(bundle_dir: Path) -> None:
    m = read_manifest(bundle_dir)["metrics"]
    assert m["valid"]["impressions"] >= 200
    assert m["valid"]["auc"] > 0.6
    assert m["valid"]["auc"] > m["valid_trending"]["auc"] + 0.02
    assert m["valid"]["ndcg@10"] > m["valid_trending"]["ndcg@10"]
    imp = m["feature_importance"]
    # the simulated click model depends on position and interest: both must be used
    assert imp["position"] > 0 and imp["category_affinity"] > 0


def test_ranker_scores_follow_the_true_click_model(bundle_dir: Path, sim_dataset: Path) -> None:
    """On fresh slates of live articles, ranker scores correlate with the simulator's truth."""
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.features.training_log import load_log, warm_store
    from newsdesk.models.base import RequestContext
    from newsdesk.models.bundle import load_recommender

    world = World.load(sim_dataset)
    log = load_log(sim_dataset)
    t0, t1 = log.time_range
    now = t0 + 0.9 * (t1 - t0)
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=now)
    rec = load_recommender(bundle_dir, store, embedder=None)
    live = [rec.ws.catalog.ids[i] for i in rec.ws.catalog.live_indices(now, 24.0)]
    corr = []
    for u in range(0, 200, 10):
        s = rec.score(RequestContext(user_id=f"u{u}", now=now), live)
        truth = world.attraction(np.full(len(live), u), live, now)
        corr.append(np.corrcoef(np.argsort(np.argsort(s)), np.argsort(np.argsort(truth)))[0, 1])
    assert np.mean(corr) > 0.3  # Spearman correlation with the true attraction


def test_save_load_identical_predictions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURE_NAMES))).astype(np.float32)
    y = (x[:, 1] + rng.normal(size=2000) > 1).astype(float)
    groups = np.full(200, 10)
    model = LambdaRanker(FEATURE_NAMES, num_boost_round=20, params={"min_data_in_leaf": 5})
    model.fit(x, y, groups)
    model.save(tmp_path / "r.txt")
    again = LambdaRanker.load(tmp_path / "r.txt", FEATURE_NAMES)
    np.testing.assert_array_equal(model.predict(x), again.predict(x))
    with pytest.raises(BundleError, match="feature schema"):
        LambdaRanker.load(tmp_path / "r.txt", [*FEATURE_NAMES[:-1], "other"])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), k=st.integers(1, 15), cap=st.one_of(st.none(), st.integers(1, 4)),
       lam=st.one_of(st.none(), st.floats(0, 1)), seed=st.integers(0, 10_000))
def test_select_invariants(n: int, k: int, cap: int | None, lam: float | None,
                           seed: int) -> None:
    """Greedy selection: no duplicates, at most k, category cap respected, near-duplicates out."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=n)
    cats = rng.integers(0, 4, size=n)
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    if n > 1:
        emb[1] = emb[0]  # an exact duplicate
    emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
    rules = RerankConfig(category_cap=cap, mmr_lambda=lam, near_duplicate_threshold=0.99)
    out = select(rules, scores, cats, emb, k)
    assert len(out) == len(set(out.tolist())) <= k
    if cap is not None:
        assert all(np.sum(cats[out] == c) <= cap for c in range(4))
    assert not (n > 1 and 0 in out and 1 in out)
    if lam is None and cap is None and n:  # pure relevance: the top item comes first
        assert out[0] == int(np.argmax(scores))


@pytest.mark.parametrize("seed", range(40))
def test_greedy_head_walk_equals_the_full_walk(seed: int) -> None:
    """The capped re-ranking walks each category's head first; whether or not it falls back,
    the positions chosen equal the plain walk over the whole ranked list."""
    from newsdesk.models.rerank import RerankConfig, _walk, select

    rng = np.random.default_rng(seed)
    n, dim = int(rng.integers(5, 300)), 8
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    if seed % 2:  # near-duplicates: copies of a few rows with a little noise
        src = rng.integers(0, n, n // 3)
        emb[rng.integers(0, n, n // 3)] = emb[src] + 0.01 * rng.normal(size=(len(src), dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cats = rng.integers(0, int(rng.integers(1, 12)), n)
    scores = rng.normal(size=n)
    rules = RerankConfig(category_cap=int(rng.integers(1, 5)), near_duplicate_threshold=0.95)
    k = int(rng.integers(1, 40))
    order = np.argsort(-scores, kind="stable")
    want, _ = _walk(rules, order, cats, emb, k)
    np.testing.assert_array_equal(select(rules, scores, cats, emb, k), want)


@pytest.mark.parametrize("seed", range(40))
def test_pairwise_walk_equals_the_walk_item_by_item(seed: int) -> None:
    """A short walk takes all pairwise similarities in one product; it chooses exactly what
    the item-by-item walk chooses, and reports the same near-duplicate skips."""
    from newsdesk.models.rerank import RerankConfig, _walk_each, _walk_pairwise

    rng = np.random.default_rng(seed)
    n, dim = int(rng.integers(1, 160)), 16
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    src = rng.integers(0, n, n // 3)
    emb[rng.integers(0, n, n // 3)] = emb[src] + 0.01 * rng.normal(size=(len(src), dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cats = rng.integers(0, int(rng.integers(1, 12)), n)
    cap = None if seed % 3 == 0 else int(rng.integers(1, 5))
    rules = RerankConfig(category_cap=cap, near_duplicate_threshold=0.95)
    order = rng.permutation(n)
    k = int(rng.integers(1, 40))
    got, got_skipped = _walk_pairwise(rules, order, cats, emb, k)
    want, want_skipped = _walk_each(rules, order, cats, emb, k)
    np.testing.assert_array_equal(got, want)
    assert got_skipped == want_skipped
