"""Item-to-item co-clicks: co-visitation counts of article pairs clicked in the same session.

A session is a run of one user's clicks with gaps below `session_gap_s`; each pair of clicks
at most `window` apart in a session counts once, symmetrically (history lists count as one
session). Candidates are the live articles most co-clicked with the user's newest clicks
(weighted like the profile). The counts are fitted at training time; articles published
later have none there. The online store counts the same pairs from the event stream
(`features.covisitation`, decayed); with `online_weight` > 0 both the candidates and the
`coclick` ranking feature add those online counts (times `online_weight`) to the trained
ones, so an article read together with others ten minutes ago already has co-clicks. One
store read per request (the user's recent clicks' neighbour rows), shared by `propose` and
`pair_scores` (`propose` leaves its read for the next call with the same clicks and time,
which takes it once).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from newsdesk.features.covisit_replay import ReplayCoVisits
from newsdesk.features.ranking_features import RankingInputs
from newsdesk.models.candidates.base import (
    IndexedGenerator,
    UserView,
    Workspace,
    because_you_read,
    top_n,
)


class CoClickGenerator(IndexedGenerator):
    name = "coclick"

    def __init__(self, ws: Workspace, *, session_gap_s: float = 1800.0, window: int = 5,
                 recent: int = 10, online_weight: float = 1.0,
                 online_neighbours: int = 20) -> None:
        super().__init__(ws)
        if not online_weight >= 0:
            raise ValueError(f"coclick online_weight must be >= 0, got {online_weight!r}")
        if online_neighbours < 1:
            raise ValueError(f"coclick online_neighbours must be >= 1, got {online_neighbours!r}")
        self.session_gap_s = session_gap_s
        self.window = window
        self.recent = recent
        self.online_weight = online_weight
        self.online_neighbours = online_neighbours
        # training: the store's co-visitation as it was at each query time, from the log
        # (set by the training job; serving reads the store)
        self.replay_covisits: ReplayCoVisits | None = None
        # (click ids, now) -> (click idx, neighbour idx, counts) of the last store read
        self._online_memo: tuple[tuple[tuple[str, ...], float], tuple] | None = None
        self.matrix_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self._keys: np.ndarray | None = None
        self._vals: np.ndarray | None = None

    def fit(self, user: np.ndarray, article: np.ndarray, ts: np.ndarray,
            n_articles: int) -> CoClickGenerator:
        """Fit on clicks (user codes, catalog indices, Unix s); unknown articles (-1) skipped.
        History clicks may be passed with equal timestamps in list order."""
        keep = article >= 0
        user, article, ts = user[keep], article[keep], ts[keep]
        order = np.lexsort((ts, user))  # stable: equal-time history clicks keep list order
        user, article, ts = user[order], article[order], ts[order]
        new_session = np.ones(len(user), dtype=bool)
        new_session[1:] = (user[1:] != user[:-1]) | (np.diff(ts) > self.session_gap_s)
        session = np.cumsum(new_session)
        rows, cols = [], []
        for k in range(1, self.window + 1):
            same = session[k:] == session[:-k]
            a, b = article[:-k][same], article[k:][same]
            diff = a != b
            rows += [a[diff], b[diff]]
            cols += [b[diff], a[diff]]
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        m = sp.coo_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_articles, n_articles))
        self.set_matrix(m.tocsr())
        return self

    def set_matrix(self, matrix: sp.csr_matrix) -> None:
        if not matrix.has_canonical_format:  # a saved matrix already is: no write into a map
            matrix.sum_duplicates()
        if not matrix.has_sorted_indices:
            matrix.sort_indices()
        self.matrix_ = matrix
        # the (row * n + col) keys of the batch path cost 12 bytes a pair (~200 MB at full
        # scale); serving looks pairs up row by row instead, so they are built on first use
        self._keys = self._vals = None

    def _pair_table(self) -> tuple[np.ndarray, np.ndarray]:
        if self._keys is None or self._vals is None:
            m = self.matrix_
            rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
            keys = rows * m.shape[1] + m.indices.astype(np.int64)
            self._vals = m.data.astype(np.float32)
            self._keys = keys
        return self._keys, self._vals

    def _weights(self, click_idx: np.ndarray) -> np.ndarray:
        return self.ws.builder.click_weights(click_idx[..., : self.recent])

    def pair_scores(self, inputs: RankingInputs) -> np.ndarray:
        """Recency-weighted co-click count of each row's article with the user's clicks (R,):
        trained counts plus `online_weight` x the online store's decayed counts."""
        if len(inputs.click_idx) == 1 and self.replay_covisits is None and len(inputs.now) \
                and inputs.now.min() == inputs.now.max():
            return self._one_request_pair_scores(inputs)
        out = self._trained_pair_scores(inputs)
        if self.online_weight > 0 and len(inputs.row_article):
            out = out + self._online_pair_scores(inputs)
        return out

    def _one_request_pair_scores(self, inputs: RankingInputs) -> np.ndarray:
        """`pair_scores` of one reader at one time (a request): the co-click entries of the
        reader's clicks, trained and online, summed per article as `propose` sums them (the
        store read is the one `propose` left), then looked up per row. The general path adds
        the same terms in another order: equal up to float64 rounding."""
        a = inputs.row_article
        clicks = inputs.click_idx[0]
        cols, weights = self._entries(clicks)
        if self.online_weight > 0:
            o_cols, o_weights = self._online_entries(clicks, float(inputs.now[0]))
            if len(o_cols):
                cols = np.concatenate([cols, o_cols])
                weights = np.concatenate([weights, o_weights])
        out = np.zeros(len(a))
        if len(cols) == 0:
            return out
        arts, slot = np.unique(cols, return_inverse=True)
        sums = np.bincount(slot, weights=weights, minlength=len(arts))
        pos = np.minimum(np.searchsorted(arts, a), len(arts) - 1)
        hit = (a >= 0) & (arts[pos] == a)
        out[hit] = sums[pos[hit]]
        return out

    def _trained_pair_scores(self, inputs: RankingInputs) -> np.ndarray:
        n = self.matrix_.shape[0]
        a = inputs.row_article
        if n == 0 or self.matrix_.nnz == 0:
            return np.zeros(len(a))
        clicks = inputs.click_idx[:, : self.recent][inputs.row_query]  # (R, M)
        w = self._weights(inputs.click_idx)[inputs.row_query]
        ok = (clicks >= 0) & (clicks < n) & (a[:, None] >= 0) & (a[:, None] < n)
        if len(inputs.click_idx) == 1:
            vals = self._row_lookup(inputs.click_idx[0, : self.recent], a, ok)
        else:
            keys, table = self._pair_table()
            key = np.where(ok, clicks * n + a[:, None], -1)
            pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            hit = ok & (keys[pos] == key)
            vals = np.where(hit, table[pos], 0.0)
        return (vals * w).sum(axis=1)

    # -- online counts (the store's co-visitation) --------------------------------------------
    def _online(self, clicks: np.ndarray, now: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(click article, neighbour, count at now) of the online neighbour rows of the
        distinct articles in `clicks` (catalog indices; unknown neighbours left out)."""
        cat = self.ws.catalog
        uniq = np.unique(clicks[clicks >= 0])
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        if len(uniq) == 0:
            return empty
        ids = tuple(cat.ids[c] for c in uniq.tolist())
        memo = self._online_memo
        if memo is not None and memo[0] == (ids, now):
            self._online_memo = None  # one reuse: the same request's feature pass
            return memo[1]
        rows = self.ws.store.coclick_neighbours(list(ids), now, self.online_neighbours)
        sizes = [len(r) for r in rows]
        if sum(sizes) == 0:
            got = empty
        else:
            nb = cat.lookup([b for r in rows for b, _ in r])
            cnt = np.fromiter((v for r in rows for _, v in r), np.float64, count=len(nb))
            src = np.repeat(uniq, sizes)
            keep = nb >= 0
            got = (src[keep], nb[keep], cnt[keep])
        self._online_memo = ((ids, now), got)
        return got

    def _online_entries(self, click_idx: np.ndarray, now: float
                        ) -> tuple[np.ndarray, np.ndarray]:
        """(article, weight * online count) over the user's recent clicks (like `_entries`)."""
        clicks = click_idx[: self.recent]
        src, nb, cnt = self._online(clicks, now)
        if len(src) == 0:
            return nb, cnt
        w = self._weights(click_idx[None, :])[0]
        ok = clicks >= 0
        # a click's weight, summed over its positions (an article read twice counts twice)
        per = np.bincount(clicks[ok], weights=w[ok], minlength=int(src.max()) + 1)
        return nb, cnt * per[src] * self.online_weight

    def _online_pair_scores(self, inputs: RankingInputs) -> np.ndarray:
        a = inputs.row_article
        clicks = inputs.click_idx[:, : self.recent]
        if self.replay_covisits is not None:  # training rows: the log, point in time
            c = clicks[inputs.row_query]  # (R, M)
            w = self._weights(inputs.click_idx)[inputs.row_query]
            vals = self.replay_covisits.lookup(
                c.ravel(), np.repeat(a, c.shape[1]),
                np.repeat(inputs.now, c.shape[1])).reshape(c.shape)
            return (vals * w).sum(axis=1) * self.online_weight
        t_ref = float(inputs.now.max())
        src, nb, cnt = self._online(clicks, t_ref)
        if len(src) == 0:
            return np.zeros(len(a))
        n_cat = max(int(self.ws.catalog.size), int(nb.max()) + 1, int(src.max()) + 1,
                    int(a.max()) + 1)
        keys = src * n_cat + nb
        order = np.argsort(keys, kind="stable")
        keys, cnt = keys[order], cnt[order]
        w = self._weights(inputs.click_idx)[inputs.row_query]  # (R, M)
        c = clicks[inputs.row_query]
        ok = (c >= 0) & (a[:, None] >= 0)
        key = np.where(ok, c * n_cat + a[:, None], -1)
        pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        hit = ok & (keys[pos] == key)
        vals = np.where(hit, cnt[pos], 0.0)
        # counts decayed to the latest row time, brought to each row's own time
        hl = self.ws.store.covisit.half_life_hours if self.ws.store.covisit else 1.0
        back = np.power(2.0, np.clip((t_ref - inputs.now) / (hl * 3600.0), -1000.0, 1000.0))
        return (vals * w).sum(axis=1) * back * self.online_weight

    def _row_lookup(self, clicks: np.ndarray, a: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """(R, M) co-click counts of one user's M clicks with R articles, 0 where not `ok`:
        a binary search in each click's (sorted) CSR row, no global key table needed."""
        m = self.matrix_
        out = np.zeros(ok.shape, dtype=np.float64)
        safe_a = np.where(a >= 0, a, 0)
        for j, c in enumerate(clicks.tolist()):
            col = ok[:, j]
            if not col.any():
                continue
            lo, hi = int(m.indptr[c]), int(m.indptr[c + 1])
            if hi == lo:
                continue
            cols = m.indices[lo:hi]
            pos = np.minimum(np.searchsorted(cols, safe_a), hi - lo - 1)
            hit = col & (cols[pos] == safe_a)
            out[:, j] = np.where(hit, m.data[lo:hi][pos], 0.0)
        return out

    def _entries(self, click_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(article, weight * count) of every co-click entry of the user's recent clicks, in
        the order `matrix_[rows].T @ w` adds them (row by row, float64)."""
        n = self.matrix_.shape[0]
        ok = (click_idx[: self.recent] >= 0) & (click_idx[: self.recent] < n)
        w = self._weights(click_idx[None, :])[0][ok]
        rows = click_idx[: self.recent][ok]
        m = self.matrix_
        starts, ends = m.indptr[rows], m.indptr[rows + 1]
        if len(rows) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts.tolist(), ends.tolist(),
                                                                 strict=True)])
        return m.indices[take], m.data[take].astype(np.float64) * np.repeat(w, ends - starts)

    def scores_for(self, click_idx: np.ndarray) -> np.ndarray:
        """Dense co-click scores (n_fitted,) of all articles for one user's click list."""
        # = (matrix_[rows].T @ w), without building a sparse matrix per request
        cols, weights = self._entries(click_idx)
        return np.bincount(cols, weights=weights, minlength=self.matrix_.shape[0])

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        # the live articles' `scores_for`, summed over the entries of live articles only
        # (each article's sum keeps its order) instead of a dense pass over the catalog
        cols, weights = self._entries(view.click_idx)
        if self.online_weight > 0:
            o_cols, o_weights = self._online_entries(view.click_idx, view.now)
            if len(o_cols):
                cols = np.concatenate([cols, o_cols])
                weights = np.concatenate([weights, o_weights])
        if len(cols) == 0:
            return view.live[:0], np.zeros(0)
        cat_live = self.ws.live_mask(view.live)
        keep = cols < len(cat_live)
        keep[keep] = cat_live[cols[keep]]
        arts, slot = np.unique(cols[keep], return_inverse=True)  # ascending = live order
        s = np.bincount(slot, weights=weights[keep], minlength=len(arts))
        hit = s > 0
        return top_n(arts[hit].astype(np.int64), s[hit], n)

    def neighbours(self, i: int, live: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if i >= self.matrix_.shape[0]:
            return live[:0], np.zeros(0)
        row = self.matrix_[i]
        cols, vals = row.indices.astype(np.int64), row.data.astype(np.float64)
        is_live = np.isin(cols, live)
        return top_n(cols[is_live], vals[is_live], n)

    def reason(self, view: UserView, i: int) -> str:
        return because_you_read(self.ws, view, i)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        m = self.matrix_
        np.save(directory / "indptr.npy", m.indptr, allow_pickle=False)
        np.save(directory / "indices.npy", m.indices, allow_pickle=False)
        np.save(directory / "data.npy", m.data, allow_pickle=False)
        np.save(directory / "shape.npy", np.asarray(m.shape, np.int64), allow_pickle=False)

    def load(self, directory: Path) -> CoClickGenerator:
        shape = tuple(int(x) for x in np.load(directory / "shape.npy", allow_pickle=False))
        # read-only memory maps, shared by worker processes; set_matrix writes only into a
        # matrix that is not canonical, which a saved one always is
        m = sp.csr_matrix((np.load(directory / "data.npy", allow_pickle=False, mmap_mode="r"),
                           np.load(directory / "indices.npy", allow_pickle=False,
                                   mmap_mode="r"),
                           np.load(directory / "indptr.npy", allow_pickle=False,
                                   mmap_mode="r")), shape=shape)
        self.set_matrix(m)
        return self
