"""A multi-stage collaborative-filtering recommender: candidates from several models, re-ranked
by LightGBM LambdaRank.

    stage 1  candidates  top-N of EASE, ALS, all-time popularity and popularity around the
                         user's own time (windowed), union per user, seen items excluded
    stage 2  features    each model's score and rank, item popularity (all-time, 7/30/90 days
                         before the user's time), recency of the item's ratings, item age,
                         item mean rating, user activity, genre affinity, similarity to the
                         user's most recent items
    stage 3  ranker      LambdaRank trained on a validation split carved from the training
                         data by time (each user's last `val_fraction`), never on the test

Time features are computed as of each user's last training interaction (`t_u`) from ratings
at or before `t_u` only. Interaction frames are Polars frames with integer `user`, `item`,
float `ts` (Unix seconds) and `rating` columns; items are 0..n_items-1, users 0..n_users-1.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from newsdesk.deps import require
from newsdesk.evaluation import metrics as M
from newsdesk.evaluation.topk import per_user_temporal_split
from newsdesk.models.ease import EASE

DAY = 86_400.0


def interaction_matrix(df: pl.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary users x items CSR matrix of the interactions in `df`."""
    data = np.ones(df.height, dtype=np.float32)
    X = sp.csr_matrix((data, (df["user"].to_numpy(), df["item"].to_numpy())),
                      shape=(n_users, n_items))
    X.data[:] = 1.0  # duplicates collapse to one
    return X


def relevant_sets(df: pl.DataFrame, min_rating: float) -> dict[int, set[int]]:
    """user -> items rated at least `min_rating` in `df`."""
    pos = df.filter(pl.col("rating") >= min_rating).group_by("user").agg(pl.col("item"))
    return {int(u): set(items) for u, items in pos.iter_rows()}


def top_k_unseen(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Indices of the top-k items per row, best first, excluding seen items; (rows, k)."""
    s = scores.astype(np.float64, copy=True)
    rows, cols = seen.nonzero()
    s[rows, cols] = -np.inf
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class EASEScorer:
    """EASE behind the scorer interface: fit(X) then scores(user_ids) -> (rows, n_items)."""

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    def fit(self, X: sp.csr_matrix) -> EASEScorer:
        self.model_ = EASE(self.l2).fit(X)
        self.X_ = X
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.model_.scores(self.X_[users])


class ALSScorer:
    """implicit's CPU ALS (confidence 1 + alpha * x), single-threaded BLAS for determinism."""

    def __init__(self, factors: int = 64, regularization: float = 0.05, iterations: int = 15,
                 alpha: float = 10.0, seed: int = 0) -> None:
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.alpha = alpha
        self.seed = seed

    def fit(self, X: sp.csr_matrix) -> ALSScorer:
        require("implicit", "ml")
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.seed, num_threads=1,
                calculate_training_loss=False)
            model.fit(X.astype(np.float32), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors)
        self.item_factors_ = np.asarray(model.item_factors)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T


def evaluate_scorer(scorer: Any, X_fit: sp.csr_matrix, relevant: dict[int, set[int]],
                    k: int = 10) -> dict[str, float]:
    """nDCG@k and recall@k of a fitted scorer's full ranking (seen items excluded)."""
    users = np.array(sorted(u for u, r in relevant.items() if r), dtype=np.int64)
    top = top_k_unseen(scorer.scores(users), X_fit[users], k)
    nd = [M.ndcg_at_k(list(top[j]), relevant[int(u)], k) for j, u in enumerate(users)]
    rc = [M.recall_at_k(list(top[j]), relevant[int(u)], k) for j, u in enumerate(users)]
    return {f"ndcg@{k}": float(np.mean(nd)), f"recall@{k}": float(np.mean(rc))}


def tune(factory: Any, grid: Iterable[dict[str, Any]], X_fit: sp.csr_matrix,
         relevant: dict[int, set[int]], k: int = 10) -> tuple[dict[str, Any], list[dict]]:
    """Grid search on a validation split; returns the best params and every trial (nDCG@k)."""
    trials = []
    for params in grid:
        result = evaluate_scorer(factory(**params).fit(X_fit), X_fit, relevant, k)
        trials.append({**params, **result})
    best = max(trials, key=lambda t: t[f"ndcg@{k}"])
    return {p: best[p] for p in trials[0] if p not in (f"ndcg@{k}", f"recall@{k}")}, trials


@dataclass
class _Context:
    """Everything the features need, computed from one training frame."""

    X: sp.csr_matrix
    ease: EASEScorer
    als: ALSScorer
    t_user: np.ndarray  # (n_users,) last training time per user
    item_ts: list[np.ndarray]  # sorted rating times per item
    pop: np.ndarray
    item_mean: np.ndarray
    user_n: np.ndarray
    user_mean: np.ndarray
    user_genre: np.ndarray | None
    recent: dict[int, np.ndarray] = field(default_factory=dict)  # user -> last items


@dataclass
class HybridCF:
    """EASE + ALS + popularity candidates, LightGBM LambdaRank re-ranking."""

    ease_l2: float = 500.0
    als_params: dict[str, Any] = field(default_factory=dict)
    n_candidates: int = 150  # per source
    val_fraction: float = 0.2
    min_positive: float = 4.0
    n_estimators: int = 500  # upper bound; early stopping chooses
    learning_rate: float = 0.05
    num_leaves: int = 31
    recent_items: int = 5
    seed: int = 0
    item_genres: np.ndarray | None = None  # (n_items, n_genres) 0/1, optional

    FEATURES = ("ease_score", "ease_rank", "als_score", "als_rank", "pop_log", "pop_rank",
                "win7", "win30", "win90", "since_last_days", "item_age_days", "item_mean",
                "user_n_log", "user_mean", "genre_affinity", "recent_sim", "n_sources")

    def _context(self, df: pl.DataFrame, n_users: int, n_items: int) -> _Context:
        X = interaction_matrix(df, n_users, n_items)
        ease = EASEScorer(self.ease_l2).fit(X)
        als = ALSScorer(**{"seed": self.seed, **self.als_params}).fit(X)
        users = df["user"].to_numpy()
        items = df["item"].to_numpy()
        ts = df["ts"].to_numpy().astype(np.float64)
        ratings = df["rating"].to_numpy().astype(np.float64)
        t_user = np.full(n_users, ts.max() if len(ts) else 0.0)
        last = df.group_by("user").agg(pl.col("ts").max())
        t_user[last["user"].to_numpy()] = last["ts"].to_numpy()
        order = np.lexsort((ts, items))
        bounds = np.searchsorted(items[order], np.arange(n_items + 1))
        item_ts = [ts[order][bounds[i]:bounds[i + 1]] for i in range(n_items)]
        pop = np.bincount(items, minlength=n_items).astype(np.float64)
        rsum = np.bincount(items, weights=ratings, minlength=n_items)
        item_mean = np.where(pop > 0, (rsum + 3.5 * 5) / (pop + 5), 3.5)  # shrunk to 3.5
        user_n = np.bincount(users, minlength=n_users).astype(np.float64)
        user_mean = np.bincount(users, weights=ratings, minlength=n_users) / np.maximum(user_n, 1)
        user_genre = None
        if self.item_genres is not None:
            user_genre = np.asarray(X @ self.item_genres, dtype=np.float64)
            user_genre /= np.maximum(np.linalg.norm(user_genre, axis=1, keepdims=True), 1e-9)
        recent_df = (df.sort("ts").group_by("user")
                     .agg(pl.col("item").tail(self.recent_items)))
        recent = {int(u): np.asarray(its, dtype=np.int64) for u, its in recent_df.iter_rows()}
        return _Context(X, ease, als, t_user, item_ts, pop, item_mean, user_n, user_mean,
                        user_genre, recent)

    def _candidates(self, ctx: _Context, users: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item, features) rows for every candidate of every user."""
        n_items = ctx.X.shape[1]
        s_ease = ctx.ease.scores(users)
        s_als = ctx.als.scores(users)
        seen = ctx.X[users]
        n = self.n_candidates
        top_e = top_k_unseen(s_ease, seen, n)
        top_a = top_k_unseen(s_als, seen, n)
        top_p = top_k_unseen(np.tile(ctx.pop, (len(users), 1)), seen, n // 2)
        # popularity in the 30 days before each user's time: the time-aware source
        win_pop = np.zeros((len(users), n_items))
        for i in range(n_items):
            t = ctx.item_ts[i]
            if len(t):
                tu = ctx.t_user[users]
                win_pop[:, i] = (np.searchsorted(t, tu, side="right")
                                 - np.searchsorted(t, tu - 30 * DAY, side="right"))
        top_w = top_k_unseen(win_pop, seen, n // 2)
        rank_e = np.argsort(np.argsort(-s_ease, axis=1, kind="stable"), axis=1)
        rank_a = np.argsort(np.argsort(-s_als, axis=1, kind="stable"), axis=1)
        pop_rank = np.argsort(np.argsort(-ctx.pop, kind="stable"))
        B = ctx.ease.model_.B_
        rows_u, rows_i, feats = [], [], []
        for j, u in enumerate(users):
            sources = np.concatenate([top_e[j], top_a[j], top_p[j], top_w[j]])
            cand, counts = np.unique(sources, return_counts=True)
            tu = ctx.t_user[u]
            f = np.zeros((len(cand), len(self.FEATURES)))
            f[:, 0] = s_ease[j, cand]
            f[:, 1] = rank_e[j, cand]
            f[:, 2] = s_als[j, cand]
            f[:, 3] = rank_a[j, cand]
            f[:, 4] = np.log1p(ctx.pop[cand])
            f[:, 5] = pop_rank[cand]
            for col, days in ((6, 7), (7, 30), (8, 90)):
                f[:, col] = [np.searchsorted(ctx.item_ts[i], tu, side="right")
                             - np.searchsorted(ctx.item_ts[i], tu - days * DAY, side="right")
                             for i in cand]
            for r, i in enumerate(cand):
                t = ctx.item_ts[i]
                k = np.searchsorted(t, tu, side="right")
                f[r, 9] = (tu - t[k - 1]) / DAY if k else 1e4
                f[r, 10] = (tu - t[0]) / DAY if k else -1.0
            f[:, 11] = ctx.item_mean[cand]
            f[:, 12] = np.log1p(ctx.user_n[u])
            f[:, 13] = ctx.user_mean[u]
            if ctx.user_genre is not None and self.item_genres is not None:
                g = self.item_genres[cand].astype(np.float64)
                g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-9)
                f[:, 14] = g @ ctx.user_genre[u]
            rec = ctx.recent.get(int(u))
            if rec is not None and len(rec):
                f[:, 15] = B[rec][:, cand].mean(axis=0)
            f[:, 16] = counts
            rows_u.append(np.full(len(cand), u))
            rows_i.append(cand)
            feats.append(f)
        return np.concatenate(rows_u), np.concatenate(rows_i), np.vstack(feats)

    def fit(self, train: pl.DataFrame, n_users: int, n_items: int) -> HybridCF:
        """Train the ranker on a time-based validation split of `train`, then refit the
        candidate models on all of `train`."""
        lgb = require("lightgbm", "ml")
        fit_part, val_part = per_user_temporal_split(
            train, self.val_fraction, user="user", item="item", ts="ts")
        val_rel = relevant_sets(val_part, self.min_positive)
        ctx = self._context(fit_part, n_users, n_items)
        users = np.array(sorted(u for u, r in val_rel.items() if r), dtype=np.int64)
        cu, ci, feats = self._candidates(ctx, users)
        labels = np.array([1 if i in val_rel[int(u)] else 0 for u, i in zip(cu, ci, strict=True)])
        # users without a positive among their candidates carry no ranking signal
        has_pos = {int(u) for u, y in zip(cu, labels, strict=True) if y}
        keep = np.array([int(u) in has_pos for u in cu])
        found = int(labels.sum())
        cu, feats, labels = cu[keep], feats[keep], labels[keep]
        # early stopping on a seeded 20% of the validation users picks the number of trees;
        # the final ranker is then refitted on all of them with that many trees
        group_users, group_sizes = np.unique(cu, return_counts=True)  # cu is grouped by user
        rng = np.random.default_rng(self.seed)
        held = set(rng.permutation(group_users)[: max(1, len(group_users) // 5)].tolist())
        in_held = np.array([int(u) in held for u in cu])
        held_groups = np.array([int(u) in held for u in group_users])

        def ranker(n_estimators: int) -> Any:
            return lgb.LGBMRanker(
                objective="lambdarank", n_estimators=n_estimators,
                learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                random_state=self.seed, n_jobs=1, verbose=-1, lambdarank_truncation_level=20)

        probe = ranker(self.n_estimators)
        held_x, held_y = feats[in_held], labels[in_held]
        # lightgbm >= 4.7 renamed eval_set to eval_X / eval_y (and deprecates the old name)
        if "eval_X" in inspect.signature(probe.fit).parameters:
            eval_kw: dict[str, Any] = {"eval_X": (held_x,), "eval_y": (held_y,)}
        else:
            eval_kw = {"eval_set": [(held_x, held_y)]}
        probe.fit(feats[~in_held], labels[~in_held], group=group_sizes[~held_groups],
                  eval_group=[group_sizes[held_groups]], eval_at=[10],
                  callbacks=[lgb.early_stopping(30, verbose=False)], **eval_kw)
        self.best_iteration_ = int(probe.best_iteration_ or self.n_estimators)
        self.ranker_ = ranker(self.best_iteration_)
        self.ranker_.fit(feats, labels, group=group_sizes)
        # share of validation positives that stage 1 retrieves (an upper bound for stage 3)
        self.candidate_recall_ = found / max(1, sum(len(val_rel[int(u)]) for u in users))
        self.ctx_ = self._context(train, n_users, n_items)
        return self

    def recommend(self, users: Iterable[int], k: int = 10) -> dict[int, list[int]]:
        """Top-k unseen items per user (item indices, best first)."""
        users_arr = np.asarray(list(users), dtype=np.int64)
        cu, ci, feats = self._candidates(self.ctx_, users_arr)
        scores = self.ranker_.predict(feats)
        out: dict[int, list[int]] = {}
        for u in users_arr:
            m = cu == u
            order = np.argsort(-scores[m], kind="stable")[:k]
            out[int(u)] = [int(x) for x in ci[m][order]]
        return out
