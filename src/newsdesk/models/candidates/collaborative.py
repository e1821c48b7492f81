"""Collaborative filtering: implicit-feedback ALS (benfred/implicit) on user x article clicks.

Users unknown to the model (new users, or users who clicked only after training) get a vector
from the articles they clicked recently, so CF still helps once a new user has a few clicks.
Factors are saved as .npy, no pickle.

Real-time learning (`online_foldin`, on by default; off: the training-time behaviour):
* articles without factors (published after training, or never clicked before it) get a
  vector while serving: the decayed mean of the factors of the articles read together with
  them, from the online store's co-visitation (`features.covisitation`): each co-click is one
  reader's session, so this is the decayed mean, over the article's clickers, of the fold-in
  of their session. A second pass lets an article co-read only with fresh ones borrow theirs.
  Recomputed once per `foldin_refresh_s` bucket (one store read for the fresh live articles,
  not one per request or per live set), from the store as it is then: no look-ahead.
* users without a fitted factor are folded in against the item factors (those of fresh
  articles included) as one ALS user step: u = (Y'Y + sum_i (c_i - 1) y_i y_i' + reg I)^-1
  sum_i c_i y_i over their recent clicks i, c_i = 1 + alpha log(1 + count) as in training;
  instead of the mean factor of the clicks, which is what they get with it off.
Why from co-visitation and not from stored user vectors: the store then keeps no per-article
list of readers (erasure stays one key) and no model output (the state survives a bundle swap,
and any replica can serve it whichever bundle it runs).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from newsdesk.deps import require
from newsdesk.features.covisit_replay import ReplayCoVisits
from newsdesk.features.ranking_features import RankingInputs
from newsdesk.models.candidates.base import IndexedGenerator, UserView, Workspace, top_n
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.models.collaborative")


class CollaborativeGenerator(IndexedGenerator):
    name = "collaborative"

    def __init__(self, ws: Workspace, *, factors: int = 32, iterations: int = 10,
                 regularization: float = 0.05, alpha: float = 10.0, seed: int = 0,
                 online_foldin: bool = True, foldin_refresh_s: float = 300.0,
                 foldin_neighbours: int = 20) -> None:
        super().__init__(ws)
        if not foldin_refresh_s > 0:
            raise ValueError(f"collaborative foldin_refresh_s must be > 0, "
                             f"got {foldin_refresh_s!r}")
        if foldin_neighbours < 1:
            raise ValueError(f"collaborative foldin_neighbours must be >= 1, "
                             f"got {foldin_neighbours!r}")
        self.online_foldin = online_foldin
        self.foldin_refresh_s = foldin_refresh_s
        self.foldin_neighbours = foldin_neighbours
        # (time bucket, item factors) -> (fresh catalog indices, vectors); one refresh at a
        # time (_fresh_lock), the others serve the previous bucket's vectors meanwhile
        self._fresh_memo: tuple[tuple[float, object], tuple] | None = None
        self._fresh_lock = threading.Lock()
        # Serving sets this: a new bucket's refresh then runs on a background thread while
        # requests keep the previous bucket's vectors, instead of one request paying for it
        # (up to ~0.4 s at 10k live articles, during which the model thread serves no one).
        # Off elsewhere, so that offline replays stay deterministic.
        self.refresh_in_background = False
        # (reader, clicks, time, online_foldin, item factors) -> (1, factors): the last
        # request's vector
        self._user_memo: tuple[tuple[str, bytes, float | None, bool, object],
                               np.ndarray] | None = None
        self._gram: np.ndarray | None = None  # Y'Y of the item factors (user fold-in)
        # training: the store's co-visitation as it was at each query time, from the log, so
        # that fresh articles' cf_score in the training rows is what serving would compute
        self.replay_covisits: ReplayCoVisits | None = None
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
        self._gram = None
        return self

    def user_vectors(self, user_ids: list[str], click_idx: np.ndarray,
                     now: float | None = None) -> np.ndarray:
        """(Q, factors): the fitted factor; else, from the recent clicks, the ALS fold-in
        (`online_foldin`, fresh articles' vectors at `now` included) or the mean factor.

        One reader (a request) is memoised for the next call with the same reader, clicks
        and time: `propose` and the `cf_score` feature of a request share one fold-in."""
        if len(user_ids) == 1:
            key = (user_ids[0], click_idx.tobytes(), now, self.online_foldin,
                   self.item_factors_)
            memo = self._user_memo
            if memo is not None and memo[0][:4] == key[:4] and memo[0][4] is key[4]:
                return memo[1].copy()
            got = self._user_vectors(user_ids, click_idx, now)
            self._user_memo = (key, got)
            return got.copy()
        return self._user_vectors(user_ids, click_idx, now)

    def _user_vectors(self, user_ids: list[str], click_idx: np.ndarray,
                      now: float | None) -> np.ndarray:
        n_items = len(self.item_factors_)
        out = np.zeros((len(user_ids), self.factors), np.float32)
        ok = (click_idx >= 0) & (click_idx < n_items)
        safe = np.where(ok, click_idx, 0)
        unknown = [q for q, uid in enumerate(user_ids) if uid not in self.user_index_]
        if self.online_foldin and n_items and now is not None and unknown:
            fresh_idx, fresh_vec = self.fresh_vectors(now)
            for q in unknown:
                out[q] = self._fold_in(click_idx[q], fresh_idx, fresh_vec)
        elif n_items:
            summed = (self.item_factors_[safe] * ok[..., None]).sum(axis=1)
            cnt = ok.sum(axis=1, keepdims=True)
            out = np.divide(summed, cnt, out=out, where=cnt > 0)
        for q, uid in enumerate(user_ids):
            u = self.user_index_.get(uid)
            if u is not None:
                out[q] = self.user_factors_[u]
        return out

    def _fold_in(self, clicks: np.ndarray, fresh_idx: np.ndarray, fresh_vec: np.ndarray
                 ) -> np.ndarray:
        """One ALS user step over the clicked articles' vectors (trained or fresh)."""
        clicks = clicks[clicks >= 0]
        if len(clicks) == 0:
            return np.zeros(self.factors, np.float32)
        arts, counts = np.unique(clicks, return_counts=True)
        vecs = np.zeros((len(arts), self.factors))
        trained = arts < len(self.item_factors_)
        vecs[trained] = self.item_factors_[arts[trained]]
        if len(fresh_idx):
            pos = np.minimum(np.searchsorted(fresh_idx, arts), len(fresh_idx) - 1)
            hit = (fresh_idx[pos] == arts) & ~np.abs(vecs).sum(axis=1).astype(bool)
            vecs[hit] = fresh_vec[pos[hit]]
        has = np.abs(vecs).sum(axis=1) > 0
        if not has.any():
            return np.zeros(self.factors, np.float32)
        y, c = vecs[has], 1.0 + self.alpha * np.log1p(counts[has].astype(np.float64))
        if self._gram is None:
            items = np.asarray(self.item_factors_, np.float64)
            self._gram = items.T @ items
        a = self._gram + (y.T * (c - 1.0)) @ y + self.regularization * np.eye(self.factors)
        return np.linalg.solve(a, y.T @ c).astype(np.float32)

    def fresh_vectors(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(catalog indices ascending, (n, factors) vectors) of the live articles without
        trained factors that have online co-visitation at `now` (module docstring)."""
        # Once per bucket, not once per live set: the live set changes whenever an article is
        # published, upserted or ages out (every few seconds at 10k articles a day), and a
        # refresh costs up to ~0.4 s of CPU at 10k live articles with full co-visitation rows.
        # An article published within the bucket waits for the next one, as in training's
        # replay (co-clicks before the bucket's start).
        key = (float(np.floor(now / self.foldin_refresh_s)), self.item_factors_)
        memo = self._fresh_memo
        if memo is not None and memo[0][0] == key[0] and memo[0][1] is key[1]:
            return memo[1]
        stale = memo is not None and memo[0][1] is key[1]
        if not self._fresh_lock.acquire(blocking=not stale):
            return memo[1]  # type: ignore[index]  # another request is refreshing
        if stale and self.refresh_in_background:
            threading.Thread(target=self._refresh_fresh, args=(key, now), daemon=True,
                             name="cf-foldin-refresh").start()  # it releases the lock
            return memo[1]  # type: ignore[index]
        try:
            memo = self._fresh_memo
            if memo is not None and memo[0][0] == key[0] and memo[0][1] is key[1]:
                return memo[1]
            got = self._compute_fresh(self.ws.live_set(now).indices, now)
            self._fresh_memo = (key, got)
            return got
        finally:
            self._fresh_lock.release()

    def _refresh_fresh(self, key: tuple[float, object], now: float) -> None:
        """A bucket's refresh on the background thread; holds `_fresh_lock` from the caller."""
        try:
            self._fresh_memo = (key, self._compute_fresh(self.ws.live_set(now).indices, now))
        except Exception as exc:  # the store may be down: keep the old vectors, retry later
            log.warning("cf_foldin_refresh_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._fresh_lock.release()

    def _replayed_fresh(self, a: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training's view of `fresh_vectors`: (R, factors) vectors of the rows' articles
        without trained factors, from the co-clicks before the start of the row's refresh
        bucket (serving computes them at the bucket's first request); (R,) which rows have
        one. One pass (serving's second pass, fresh neighbours lending theirs, is left out)."""
        items = self.item_factors_
        assert self.replay_covisits is not None
        vec = np.zeros((len(a), self.factors))
        trained = np.zeros(len(a), bool)
        inside = (a >= 0) & (a < len(items))
        trained[inside] = np.abs(items[a[inside]]).sum(axis=1) > 0
        rows = np.flatnonzero((a >= 0) & ~trained)
        if len(rows) == 0 or len(items) == 0:
            return vec, np.zeros(len(a), bool)
        bucket = np.floor(now[rows] / self.foldin_refresh_s)
        combo, inv = np.unique(np.stack([a[rows], bucket]), axis=1, return_inverse=True)
        inv = inv.ravel()
        q, nb, w = self.replay_covisits.neighbours(
            combo[0].astype(np.int64), combo[1] * self.foldin_refresh_s, self.foldin_neighbours)
        usable = (nb < len(items))
        usable[usable] = np.abs(items[nb[usable]]).sum(axis=1) > 0
        q, nb, w = q[usable], nb[usable], w[usable]
        weights = sp.csr_matrix((w, (q, np.arange(len(q)))), shape=(combo.shape[1], len(q)))
        wsum = np.asarray(weights.sum(axis=1)).ravel()
        acc = weights @ np.asarray(items[nb], np.float64)
        ready = wsum > 0
        combo_vec = np.zeros((combo.shape[1], self.factors))
        combo_vec[ready] = acc[ready] / wsum[ready, None]
        vec[rows] = combo_vec[inv]
        hit = np.zeros(len(a), bool)
        hit[rows] = ready[inv]
        return vec, hit

    def _compute_fresh(self, live: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        items = self.item_factors_
        empty = (np.zeros(0, np.int64), np.zeros((0, self.factors), np.float32))
        if len(items) == 0:
            return empty
        has = np.zeros(len(live), bool)
        inside = live < len(items)
        has[inside] = np.abs(items[live[inside]]).sum(axis=1) > 0
        fresh = np.sort(live[~has])
        if len(fresh) == 0:
            return empty
        cat = self.ws.catalog
        rows = self.ws.store.coclick_neighbours([cat.ids[i] for i in fresh.tolist()], now,
                                                self.foldin_neighbours)
        sizes = [len(r) for r in rows]
        if sum(sizes) == 0:
            return empty
        nb = cat.lookup([b for r in rows for b, _ in r])
        w = np.fromiter((v for r in rows for _, v in r), np.float64, count=len(nb))
        src = np.repeat(np.arange(len(fresh)), sizes)
        vecs = np.zeros((len(fresh), self.factors))
        done = np.zeros(len(fresh), bool)
        trained = (nb >= 0) & (nb < len(items))
        nb_vec = np.zeros((len(nb), self.factors))
        nb_vec[trained] = items[nb[trained]]
        for _ in range(2):  # pass 2: fresh neighbours lend the vectors of pass 1
            if len(fresh):
                pos = np.minimum(np.searchsorted(fresh, np.maximum(nb, 0)), len(fresh) - 1)
                lend = (nb >= 0) & (fresh[pos] == nb) & done[pos] & ~trained
                nb_vec[lend] = vecs[pos[lend]]
            usable = np.flatnonzero(np.abs(nb_vec).sum(axis=1) > 0)
            weights = sp.csr_matrix((w[usable], (src[usable], np.arange(len(usable)))),
                                    shape=(len(fresh), len(usable)))
            wsum = np.asarray(weights.sum(axis=1)).ravel()
            acc = weights @ nb_vec[usable]
            ready = wsum > 0
            vecs[ready] = acc[ready] / wsum[ready, None]
            done = ready
        return fresh[done], vecs[done].astype(np.float32)

    def pair_scores(self, inputs: RankingInputs) -> np.ndarray:
        now = float(inputs.now.max()) if len(inputs.now) else None
        users = self.user_vectors(inputs.user_ids, inputs.click_idx, now)
        a = inputs.row_article
        ok = (a >= 0) & (a < len(self.item_factors_))
        items = self.item_factors_[np.where(ok, a, 0)] if len(self.item_factors_) else None
        if items is None:
            return np.zeros(len(a))
        out = np.where(ok, np.einsum("rf,rf->r", users[inputs.row_query], items), 0.0)
        if self.online_foldin and self.replay_covisits is not None:  # training rows
            vec, hit = self._replayed_fresh(a, inputs.now)
            if hit.any():
                out[hit] = np.einsum("rf,rf->r", users[inputs.row_query[hit]], vec[hit])
        elif self.online_foldin and now is not None:
            fresh_idx, fresh_vec = self.fresh_vectors(now)
            if len(fresh_idx):
                pos = np.minimum(np.searchsorted(fresh_idx, np.maximum(a, 0)),
                                 len(fresh_idx) - 1)
                hit = (a >= 0) & (fresh_idx[pos] == a)
                if hit.any():
                    u = users[inputs.row_query[hit]]
                    out[hit] = np.einsum("rf,rf->r", u, fresh_vec[pos[hit]])
        return out

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        u = self.user_vectors([view.user_id], view.click_idx[None, :], view.now)[0]
        if not u.any():
            return view.live[:0], np.zeros(0)
        live, factors = self._live_factors(view.live)
        scores = (factors @ u).astype(np.float64)
        if self.online_foldin:
            fresh_idx, fresh_vec = self.fresh_vectors(view.now)
            if len(fresh_idx):
                live = np.concatenate([live, fresh_idx])
                scores = np.concatenate([scores, (fresh_vec @ u).astype(np.float64)])
        if len(live) == 0:
            return live, np.zeros(0)
        return top_n(live, scores, n)

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
        self._gram = None
        return self
