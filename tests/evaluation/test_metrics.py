"""Metric implementations against sklearn and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score, roc_auc_score

from newsdesk.evaluation import metrics as M

labels_scores = st.integers(2, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.lists(st.integers(0, 5), min_size=n, max_size=n)))  # small ints: many ties


@settings(max_examples=200, deadline=None)
@given(labels_scores)
def test_auc_matches_sklearn_including_ties(data: tuple[list[int], list[int]]) -> None:
    y, s = data
    got = M.auc(y, s)
    if len(set(y)) < 2:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_ndcg_matches_sklearn_without_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, n)
        if y.sum() == 0:
            y[0] = 1
        s = rng.permutation(n).astype(float)  # distinct scores
        for k in (5, 10):
            assert M.ndcg(y, s, k) == pytest.approx(ndcg_score(y[None], s[None], k=k))


def test_hand_worked_impression() -> None:
    y = [0, 1, 0, 1]
    s = [0.9, 0.8, 0.1, 0.5]  # order: 0, 1, 3, 2 -> clicks at ranks 2 and 3
    assert M.mrr(y, s) == pytest.approx((1 / 2 + 1 / 3) / 2)
    ideal = 1 + 1 / math.log2(3)
    assert M.ndcg(y, s, 10) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert M.ndcg(y, s, 2) == pytest.approx((1 / math.log2(3)) / ideal)
    assert M.auc(y, s) == pytest.approx(0.5)  # pairs: (1,0) ok, (1,2) ok, (3,0) no, (3,2) ok
    assert list(M.ranks(s)) == [1, 2, 4, 3]
    assert list(M.ranks([0.1, 0.9, 0.5])) == [3, 1, 2]


def test_undefined_cases_are_nan_and_ties_rank_in_reverse_shown_order() -> None:
    assert math.isnan(M.auc([1, 1], [0.2, 0.1]))
    assert math.isnan(M.auc([0, 0], [0.2, 0.1]))
    assert math.isnan(M.mrr([0, 0], [0.2, 0.1]))
    assert M.mrr([1, 1], [0.0, 0.0]) == pytest.approx(0.75)
    # ties rank in reverse shown order (MIND script), so a tie never earns the logged top slot
    assert M.mrr([0, 1], [0.0, 0.0]) == pytest.approx(1.0)
    assert M.mrr([1, 0], [0.0, 0.0]) == pytest.approx(0.5)
    assert M.impression_metrics([0, 1, 0], [0.1, 0.9, 0.3])["ndcg@5"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal length"):
        M.auc([0, 1], [0.1])


@settings(max_examples=100, deadline=None)
@given(labels_scores)
def test_impression_metrics_are_bounded(data: tuple[list[int], list[int]]) -> None:
    for v in M.impression_metrics(*data).values():
        assert math.isnan(v) or 0.0 <= v <= 1.0 + 1e-12


def test_topk_metrics_hand_worked() -> None:
    rec = ["a", "b", "c", "d"]
    rel = {"b", "d", "z"}
    assert M.recall_at_k(rec, rel, 2) == pytest.approx(1 / 3)
    assert M.recall_at_k(rec, rel, 4) == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg_at_k(rec, rel, 4) == pytest.approx(dcg / idcg)
    assert M.hit_rate_at_k(rec, rel, 1) == 0.0
    assert M.hit_rate_at_k(rec, rel, 2) == 1.0
    assert math.isnan(M.recall_at_k(rec, set(), 2))


def test_beyond_accuracy_hand_worked() -> None:
    assert M.catalog_coverage([["a", "b"], ["b", "c"]], 6) == pytest.approx(0.5)
    cats = {"a": "x", "b": "x", "c": "y"}
    assert M.intra_list_diversity(["a", "b", "c"], categories=cats) == pytest.approx(2 / 3)
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 2.0]), "c": np.array([3.0, 0.0])}
    # cosines: a-b 0, a-c 1, b-c 0 -> mean 1/3
    assert M.intra_list_diversity(["a", "b", "c"], embeddings=emb) == pytest.approx(2 / 3)
    pop = {"a": 0.5, "b": 0.25, "c": 0.125}
    assert M.novelty(["a", "b"], pop) == pytest.approx(1.5)
    assert M.popularity_bias(["a"], pop) == pytest.approx(1.0)
    assert M.popularity_bias(["c"], pop) == pytest.approx(1 / 3)
    assert M.freshness_hours(["a", "b"], {"a": 0.0, "b": 3600.0}, 7200.0) == pytest.approx(1.5)
