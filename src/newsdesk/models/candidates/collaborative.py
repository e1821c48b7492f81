"""Collaborative filtering: implicit-feedback ALS (benfred/implicit) on user x article clicks.

Users unknown to the model (new users, or users who clicked only after training) are folded in
as the mean factor of the articles they clicked recently, so CF still helps once a new user has
a few clicks. Articles without factors (published after training) score 0: CF cannot carry
cold-start articles, content and recency do. Factors are saved as .npy, no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from newsdesk.deps import require
from newsdesk.features.ranking_features import RankingInputs
from newsdesk.models.candidates.base import IndexedGenerator, UserView, Workspace, top_n


class CollaborativeGenerator(IndexedGenerator):
    name = "collaborative"

    def __init__(self, ws: Workspace, *, factors: int = 32, iterations: int = 10,
                 regularization: float = 0.05, alpha: float = 10.0, seed: int = 0) -> None:
        super().__init__(ws)
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.seed = seed
        self.user_factors_ = np.zeros((0, factors), np.float32)
        self.item_factors_ = np.zeros((0, factors), np.float32)  # row = catalog index
        self.user_index_: dict[str, int] = {}

    def fit(self, user_ids: list[str], user: np.ndarray, article: np.ndarray,
            n_articles: int) -> CollaborativeGenerator:
        """Fit ALS on (user code, catalog index) click pairs; -1 articles are skipped."""
        keep = article >= 0
        user, article = user[keep], article[keep]
        used, ucode = np.unique(user, return_inverse=True)
        self.user_index_ = {user_ids[u]: i for i, u in enumerate(used)}
        if len(used) == 0:
            self.user_factors_ = np.zeros((0, self.factors), np.float32)
            self.item_factors_ = np.zeros((n_articles, self.factors), np.float32)
            return self
        m = sp.csr_matrix((np.ones(len(ucode), np.float32), (ucode, article)),
                          shape=(len(used), n_articles))
        m.sum_duplicates()
        m.data = 1.0 + self.alpha * np.log1p(m.data)  # confidence grows slowly with repeats
        als = require("implicit.cpu.als", "ml")
        threadpoolctl = require("threadpoolctl", "ml")
        # implicit runs its own threads; a multi-threaded BLAS underneath only oversubscribes
        # (and implicit warns about it when the model is built)
        with threadpoolctl.threadpool_limits(1, "blas"):
            model = als.AlternatingLeastSquares(
                factors=self.factors, iterations=self.iterations,
                regularization=self.regularization, random_state=self.seed, num_threads=1)
            model.fit(m, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, np.float32)
        return self

    def user_vectors(self, user_ids: list[str], click_idx: np.ndarray) -> np.ndarray:
        """(Q, factors): the fitted factor, or the mean factor of the recent clicks."""
        n_items = len(self.item_factors_)
        out = np.zeros((len(user_ids), self.factors), np.float32)
        ok = (click_idx >= 0) & (click_idx < n_items)
        safe = np.where(ok, click_idx, 0)
        if n_items:
            summed = (self.item_factors_[safe] * ok[..., None]).sum(axis=1)
            cnt = ok.sum(axis=1, keepdims=True)
            out = np.divide(summed, cnt, out=out, where=cnt > 0)
        for q, uid in enumerate(user_ids):
            u = self.user_index_.get(uid)
            if u is not None:
                out[q] = self.user_factors_[u]
        return out

    def pair_scores(self, inputs: RankingInputs) -> np.ndarray:
        users = self.user_vectors(inputs.user_ids, inputs.click_idx)
        a = inputs.row_article
        ok = (a >= 0) & (a < len(self.item_factors_))
        items = self.item_factors_[np.where(ok, a, 0)] if len(self.item_factors_) else None
        if items is None:
            return np.zeros(len(a))
        return np.where(ok, np.einsum("rf,rf->r", users[inputs.row_query], items), 0.0)

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        u = self.user_vectors([view.user_id], view.click_idx[None, :])[0]
        if not u.any():
            return view.live[:0], np.zeros(0)
        live, factors = self._live_factors(view.live)
        if len(live) == 0:
            return live, np.zeros(0)
        return top_n(live, (factors @ u).astype(np.float64), n)

    def _live_factors(self, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(live articles with factors, their factor rows), once per live set: gathering 10k x
        factors rows per request cost more than the product."""
        items = self.item_factors_

        def build(ix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            ix = ix[ix < len(items)]
            factors = items[ix]
            has = np.abs(factors).sum(axis=1) > 0
            return items, ix[has], np.ascontiguousarray(factors[has])

        built, ix, factors = self.ws.derived(live, "cf_factors", build)
        if built is not items:  # refitted since the live set was cached
            _, ix, factors = build(live)
        return ix, factors

    def reason(self, view: UserView, i: int) -> str:
        return "popular with readers like you"

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "user_factors.npy", self.user_factors_, allow_pickle=False)
        np.save(directory / "item_factors.npy", self.item_factors_, allow_pickle=False)
        users = sorted(self.user_index_, key=self.user_index_.__getitem__)
        (directory / "users.json").write_text(json.dumps(users))

    def load(self, directory: Path) -> CollaborativeGenerator:
        # read-only memory maps: worker processes share the pages (nothing writes into them);
        # plain ndarray views of them, which skip np.memmap's per-indexing Python overhead
        self.user_factors_ = np.load(directory / "user_factors.npy", allow_pickle=False,
                                     mmap_mode="r").view(np.ndarray)
        self.item_factors_ = np.load(directory / "item_factors.npy", allow_pickle=False,
                                     mmap_mode="r").view(np.ndarray)
        users = json.loads((directory / "users.json").read_text())
        self.user_index_ = {u: i for i, u in enumerate(users)}
        self.factors = int(self.item_factors_.shape[1])
        return self
