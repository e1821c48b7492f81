"""Full-catalog top-K evaluation with time-based splits, plus beyond-accuracy summaries.

    per_user_temporal_split(df, 0.2)   each user's last 20% of interactions (by time) are test
    global_time_split(df, cutoff)      everything before `cutoff` is train, the rest test
    evaluate_topk(recs, relevant, k)   per-user recall@K, nDCG@K, hit rate@K
    beyond_accuracy(recs, ...)         coverage, diversity, novelty, freshness, popularity bias
    recommend_all(recommender, ...)    top-K lists from any `Recommender`

Interaction frames are Polars frames with user / item / timestamp columns (names configurable).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from newsdesk.evaluation import metrics as M
from newsdesk.models.base import Recommender, RequestContext


def per_user_temporal_split(df: pl.DataFrame, test_fraction: float = 0.2, *, user: str = "user_id",
                            item: str = "article_id", ts: str = "timestamp"
                            ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split each user's interactions by time: the last `test_fraction` (rounded) go to test.

    Ties in time are ordered by item id, so the split is deterministic; a user with one
    interaction keeps it in train. Per user, no test row is earlier than a train row.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
    ranked = (df.sort([user, ts, item])
              .with_columns(pl.int_range(pl.len()).over(user).alias("_pos"),
                            pl.len().over(user).alias("_n")))
    n_test = (pl.col("_n") * test_fraction).round().clip(lower_bound=1).cast(pl.Int64)
    n_test = pl.when(pl.col("_n") < 2).then(0).otherwise(n_test)
    is_test = pl.col("_pos") >= pl.col("_n") - n_test
    ranked = ranked.with_columns(is_test.alias("_test"))
    cols = df.columns
    return (ranked.filter(~pl.col("_test")).select(cols),
            ranked.filter(pl.col("_test")).select(cols))


def global_time_split(df: pl.DataFrame, cutoff: Any, *, ts: str = "timestamp"
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train = rows strictly before `cutoff`, test = rows at or after it (same dtype as `ts`)."""
    return df.filter(pl.col(ts) < cutoff), df.filter(pl.col(ts) >= cutoff)


@dataclass
class TopKEvaluation:
    """Per-user top-K metric values of one system."""

    system: str
    k: int
    users: list[Any] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def per_unit(self) -> dict[str, np.ndarray]:
        return {m: np.asarray(v, dtype=np.float64) for m, v in self.values.items()}

    def summary(self) -> dict[str, float]:
        out = {m: M.nanmean(v) for m, v in self.values.items()}
        out["users"] = float(len(self.users))
        return out


def evaluate_topk(system: str, recs: Mapping[Any, Sequence[Any]],
                  relevant: Mapping[Any, Iterable[Any]], k: int = 10,
                  users: Sequence[Any] | None = None) -> TopKEvaluation:
    """recall@k, nDCG@k and hit rate@k per user with at least one relevant item.

    Users are taken in `users` order (default: sorted relevant users) so two systems' per-user
    arrays line up for the paired bootstrap; a user without recommendations scores 0.
    """
    order = list(users) if users is not None else sorted(u for u, r in relevant.items() if r)
    ev = TopKEvaluation(system, k, values={f"recall@{k}": [], f"ndcg@{k}": [], f"hit@{k}": []})
    for u in order:
        rel = frozenset(relevant.get(u, ()))
        if not rel:
            continue
        lst = list(recs.get(u, ()))
        ev.users.append(u)
        ev.values[f"recall@{k}"].append(M.recall_at_k(lst, rel, k))
        ev.values[f"ndcg@{k}"].append(M.ndcg_at_k(lst, rel, k))
        ev.values[f"hit@{k}"].append(M.hit_rate_at_k(lst, rel, k))
    return ev


def beyond_accuracy(recs: Mapping[Any, Sequence[Any]], *, catalog_size: int,
                    popularity: Mapping[Any, float], k: int = 10,
                    categories: Mapping[Any, str] | None = None,
                    embeddings: Mapping[Any, np.ndarray] | None = None,
                    published_at: Mapping[Any, float] | None = None,
                    now: float | None = None) -> dict[str, float]:
    """Coverage, intra-list diversity, novelty (bits), freshness (hours), popularity bias.

    `popularity` is each item's share of training users/events (for novelty and bias);
    diversity uses embeddings when given, else categories; freshness needs publish times.
    """
    lists = [list(v)[:k] for v in recs.values()]
    out = {"coverage": M.catalog_coverage(lists, catalog_size) if catalog_size else math.nan,
           "novelty": M.nanmean([M.novelty(lst, popularity) for lst in lists if lst]),
           "popularity_bias": M.nanmean([M.popularity_bias(lst, popularity)
                                         for lst in lists if lst])}
    if embeddings is not None or categories is not None:
        kw = {"embeddings": embeddings} if embeddings is not None else {"categories": categories}
        out["diversity"] = M.nanmean([M.intra_list_diversity(lst, **kw) for lst in lists])
    if published_at is not None and now is not None:
        out["freshness_hours"] = M.nanmean([M.freshness_hours(lst, published_at, now)
                                            for lst in lists])
    return out


def recommend_all(recommender: Recommender, users: Iterable[str], *, now: float, k: int = 10,
                  exclude: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """Top-k article ids per user from a `Recommender` (seen items passed as exclusions)."""
    out = {}
    for u in users:
        ex = frozenset(exclude.get(u, ())) if exclude else frozenset()
        ctx = RequestContext(user_id=u, now=now, k=k, exclude=ex)
        out[u] = [s.article_id for s in recommender.recommend(ctx)]
    return out
