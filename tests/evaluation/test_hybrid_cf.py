"""HybridCF on a small synthetic world with two taste groups and a drifting popularity."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from newsdesk.models.hybrid_cf import EASEScorer, HybridCF, top_k_unseen, tune

pytestmark = pytest.mark.ml


def _world(seed: int = 0) -> pl.DataFrame:
    """80 users in two groups; group g rates items of its half, in time order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(80):
        half = np.arange(20) if u % 2 == 0 else np.arange(20, 40)
        items = rng.choice(half, size=12, replace=False)
        for j, i in enumerate(items):
            rows.append((u, int(i), float(rng.integers(3, 6)), 1e6 + j * 3600.0 + u))
    return pl.DataFrame(rows, schema=["user", "item", "rating", "ts"], orient="row")


def test_top_k_unseen_excludes_seen_and_orders() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    assert top_k_unseen(scores, seen, 2).tolist() == [[1, 3]]


def test_tune_returns_the_best_trial() -> None:
    X = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=float))
    best, trials = tune(EASEScorer, [{"l2": 0.5}, {"l2": 50.0}], X, {0: {2}}, k=1)
    assert len(trials) == 2 and best["l2"] in (0.5, 50.0)
    assert max(t["ndcg@1"] for t in trials) == next(
        t["ndcg@1"] for t in trials if t["l2"] == best["l2"])


def test_hybrid_recommends_unseen_in_group_items_deterministically() -> None:
    df = _world()
    model = HybridCF(ease_l2=5.0, als_params={"factors": 4, "iterations": 5},
                     n_candidates=15, n_estimators=30, min_positive=3.0, seed=1)
    recs = model.fit(df, 80, 40).recommend(range(80), k=5)
    again = HybridCF(ease_l2=5.0, als_params={"factors": 4, "iterations": 5},
                     n_candidates=15, n_estimators=30, min_positive=3.0, seed=1
                     ).fit(df, 80, 40).recommend(range(80), k=5)
    assert recs == again
    seen = df.group_by("user").agg("item")
    in_group = 0
    for u, items in seen.iter_rows():
        lst = recs[u]
        assert len(lst) == 5 and len(set(lst)) == 5
        assert not set(lst) & set(items)  # seen items never come back
        half = range(20) if u % 2 == 0 else range(20, 40)
        in_group += sum(i in half for i in lst)
    assert in_group / (80 * 5) > 0.9  # the models learned the two taste groups
    assert 0.0 < model.candidate_recall_ <= 1.0
