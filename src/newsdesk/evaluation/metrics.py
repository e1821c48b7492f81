"""Ranking metrics: per-impression (MIND), full-catalog top-K, and beyond-accuracy.

Per-impression metrics follow the MIND paper's evaluation script:

* labels are the clicks among the shown items of one impression;
* the ranking is by score, descending; ties are ranked in REVERSE shown order, exactly as
  the official script's `np.argsort(y_score)[::-1]` does. This matters under position bias:
  keeping the shown order would hand a constant scorer the logged ranking's clicks for free;
* MRR = sum(label_i / rank_i) / sum(label_i);
* nDCG@k has binary gains and log2(rank + 1) discounts, normalised by the ideal ranking;
* `auc` is the Mann-Whitney statistic with average ranks for ties (= sklearn's roc_auc_score);
  it is NaN for impressions whose labels are all 0 or all 1 (they are skipped in the mean);
  MRR and nDCG are NaN when there is no click.

One tie rule for everything a report says about an impression: `impression_metrics` computes
AUC, MRR and nDCG from the tie-broken ranking that `ranks` writes into the leaderboard file
(ties in reverse shown order). The competition's scorer only sees those ranks (all distinct),
so the report's AUC equals what it computes from the file; scoring ties at 1/2 in the report
while the file breaks them made the two disagree (0.4993 vs 0.5023 on the MIND sample).

Top-K metrics take a ranked list of recommended ids and the set of relevant ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

IMPRESSION_METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


def _as_arrays(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of equal length; got {y.shape}, {s.shape}")
    return y, s


def ranking_order(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices of items from best to worst; ties in reverse input order (MIND's script)."""
    return np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")[::-1]


def ranks(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based rank of each item (the MIND leaderboard's per-item rank), shape (n,)."""
    order = ranking_order(scores)
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(1, len(order) + 1)
    return out


def auc(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """ROC AUC of one impression; NaN when labels are all 0 or all 1."""
    y, s = _as_arrays(labels, scores)
    pos = y > 0
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # average ranks (1-based, ascending) handle ties exactly like sklearn
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    r = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def mrr(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Mean reciprocal rank of the clicked items; NaN without clicks."""
    y, s = _as_arrays(labels, scores)
    if y.sum() <= 0:
        return math.nan
    y_sorted = y[ranking_order(s)]
    return float(np.sum(y_sorted / np.arange(1, len(y) + 1)) / np.sum(y))


def _dcg(y_sorted: np.ndarray, k: int) -> float:
    top = y_sorted[:k]
    return float(np.sum((2.0 ** top - 1.0) / np.log2(np.arange(2, len(top) + 2))))


def ndcg(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
         k: int = 10) -> float:
    """nDCG@k of one impression (gains 2^label - 1, i.e. binary for clicks); NaN without clicks."""
    y, s = _as_arrays(labels, scores)
    if y.sum() <= 0:
        return math.nan
    ideal = _dcg(np.sort(y)[::-1], k)
    return _dcg(y[ranking_order(s)], k) / ideal


def impression_metrics(labels: Sequence[float] | np.ndarray,
                       scores: Sequence[float] | np.ndarray) -> dict[str, float]:
    """AUC, MRR, nDCG@5 and nDCG@10 of one impression (NaN where undefined).

    AUC is taken over the tie-broken ranking (see the module docstring), so a constant scorer
    gets the AUC of reverse shown order, exactly as the scorer computes it from the file.
    """
    broken = -ranks(scores).astype(np.float64)  # distinct, higher = better, same order
    return {"auc": auc(labels, broken), "mrr": mrr(labels, scores),
            "ndcg@5": ndcg(labels, scores, 5), "ndcg@10": ndcg(labels, scores, 10)}


# ---- full-catalog top-K ------------------------------------------------------------------------

def recall_at_k(recommended: Sequence[Any], relevant: set[Any] | frozenset[Any], k: int) -> float:
    """|top-k ∩ relevant| / |relevant| (NaN when nothing is relevant)."""
    if not relevant:
        return math.nan
    return sum(1 for item in recommended[:k] if item in relevant) / len(relevant)


def ndcg_at_k(recommended: Sequence[Any], relevant: set[Any] | frozenset[Any], k: int) -> float:
    """Binary-gain nDCG@k of a ranked list; the ideal puts min(k, |relevant|) hits first."""
    if not relevant:
        return math.nan
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(recommended[:k]) if item in relevant)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / idcg


def hit_rate_at_k(recommended: Sequence[Any], relevant: set[Any] | frozenset[Any], k: int
                  ) -> float:
    """1.0 if any of the top k is relevant, else 0.0 (NaN when nothing is relevant)."""
    if not relevant:
        return math.nan
    return 1.0 if any(item in relevant for item in recommended[:k]) else 0.0


# ---- beyond accuracy ---------------------------------------------------------------------------

def catalog_coverage(lists: Sequence[Sequence[Any]], catalog_size: int) -> float:
    """Share of the catalog that appears in at least one recommended list, in [0, 1]."""
    if catalog_size <= 0:
        raise ValueError(f"catalog_size must be positive; got {catalog_size}")
    seen = {item for lst in lists for item in lst}
    return min(1.0, len(seen) / catalog_size)


def intra_list_diversity(items: Sequence[Any], *,
                         embeddings: Mapping[Any, np.ndarray] | None = None,
                         categories: Mapping[Any, str] | None = None) -> float:
    """1 - mean pairwise similarity within one list.

    With `embeddings` the similarity is the cosine of the vectors; with `categories` it is 1
    for a pair in the same category, else 0. Items missing from the mapping are ignored;
    NaN for fewer than two usable items.
    """
    if (embeddings is None) == (categories is None):
        raise ValueError("pass exactly one of embeddings= or categories=")
    if embeddings is not None:
        vecs = [np.asarray(embeddings[i], dtype=np.float64) for i in items if i in embeddings]
        if len(vecs) < 2:
            return math.nan
        m = np.vstack(vecs)
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        sim = m @ m.T
        n = len(vecs)
        mean_sim = (sim.sum() - np.trace(sim)) / (n * (n - 1))
        return float(1.0 - mean_sim)
    assert categories is not None
    cats = [categories[i] for i in items if i in categories]
    n = len(cats)
    if n < 2:
        return math.nan
    same = sum(1 for a in range(n) for b in range(a + 1, n) if cats[a] == cats[b])
    return 1.0 - same / (n * (n - 1) / 2)


def novelty(items: Sequence[Any], popularity: Mapping[Any, float]) -> float:
    """Mean self-information -log2 p(item) in bits; p = the share of users/events with the item.

    Items with unknown or zero popularity get the rarest observed popularity (avoids infinity).
    """
    if not items:
        return math.nan
    known = [p for p in popularity.values() if p > 0]
    floor = min(known) if known else 1.0
    return float(np.mean([-math.log2(max(popularity.get(i, 0.0), floor)) for i in items]))


def freshness_hours(items: Sequence[Any], published_at: Mapping[Any, float], now: float) -> float:
    """Mean age of the recommended items in hours at `now` (Unix seconds); NaN if none known."""
    ages = [(now - published_at[i]) / 3600.0 for i in items if i in published_at]
    return float(np.mean(ages)) if ages else math.nan


def popularity_bias(items: Sequence[Any], popularity: Mapping[Any, float]) -> float:
    """Mean popularity percentile of recommended items in [0, 1] (1 = only the most popular).

    Percentile is among all items in `popularity`; unknown items count as the least popular.
    """
    if not items or not popularity:
        return math.nan
    values = np.sort(np.fromiter(popularity.values(), dtype=np.float64))
    pct = [float(np.searchsorted(values, popularity.get(i, -math.inf), side="right")) / len(values)
           for i in items]
    return float(np.mean(pct))


def nanmean(values: Sequence[float] | np.ndarray) -> float:
    """Mean ignoring NaN (NaN when every value is NaN), without numpy's empty-slice warning."""
    arr = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(arr)
    return float(arr[ok].mean()) if ok.any() else math.nan
