"""Trending: the live articles with the most time-decayed clicks, read from the online store.

The store keeps decayed counts up to date on every event (incremental, no batch job); the
score blends them with a Bayesian-smoothed CTR so that an article shown a lot but rarely
clicked does not trend: score = decayed_clicks * smoothed_ctr / prior_ctr.

The list is the same for every reader, so it is computed at most once per `cache_s` (default
1 s) of request time per live set and shared: a click reaches the trending list within that
second (a reader's own clicks are filtered out per request downstream). Decay alone cannot
reorder the list inside the window (every article's clicks decay by the same factor).
"""

from __future__ import annotations

import numpy as np

from newsdesk.models.candidates.base import IndexedGenerator, UserView, Workspace, top_n


class TrendingGenerator(IndexedGenerator):
    name = "trending"
    overfetch = 4  # the store ranks all articles it knows; dead ones are filtered here
    # (capped at 256: the memory store keeps an exact top-256 index, beyond it it scans)

    def __init__(self, ws: Workspace, *, cache_s: float = 1.0) -> None:
        super().__init__(ws)
        self.cache_s = cache_s
        # (live indices object, n, computed at, result): see the module docstring
        self._result: tuple[np.ndarray, int, float, tuple[np.ndarray, np.ndarray]] | None = None
        # (catalog version, the store's top ids, their catalog indices): the top list changes
        # only when clicks reorder it, so most requests skip its 256 dictionary lookups
        self._top_cache: tuple[int, tuple[str, ...], np.ndarray] | None = None

    def _lookup_top(self, ids: tuple[str, ...]) -> np.ndarray:
        cat = self.ws.catalog
        version = cat.version
        c = self._top_cache
        if c is not None and c[0] == version and c[1] == ids:
            return c[2]
        idx = cat.lookup(ids)
        idx.flags.writeable = False
        self._top_cache = (version, ids, idx)
        return idx

    def _live_ids(self, live: np.ndarray) -> tuple[str, ...]:
        """The ids of `live`, once per live set (10k ids per request would cost more than the
        store's vectorised scan); the same tuple object lets the memory store reuse its id
        lookups too."""
        ids = self.ws.catalog.ids
        return self.ws.derived(live, "ids", lambda ix: tuple(ids[i] for i in ix.tolist()))

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        r = self._result
        if (r is not None and r[0] is view.live and r[1] == n
                and 0.0 <= view.now - r[2] < self.cache_s):
            return r[3]
        out = self._propose(view, n)
        if view.live_set is not None:  # an ad-hoc live subset is not worth keeping
            out[0].flags.writeable = False
            out[1].flags.writeable = False
            self._result = (view.live, n, view.now, out)
        return out

    def _propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        cat = self.ws.catalog
        live = self.ws.live_mask(view.live)
        top = self.ws.store.trending(min(n * self.overfetch, 256), view.now)
        idx = self._lookup_top(tuple(a for a, _ in top))
        ok = (idx >= 0) & (idx < len(live))  # an article added since the live set: not live
        ok[ok] = live[idx[ok]]
        idx = idx[ok]
        if len(idx) < n and len(view.live) > len(idx):  # few live ones among the store's top
            top = self.ws.store.trending(n, view.now, candidates=self._live_ids(view.live))
            idx = np.unique(np.concatenate([idx, cat.lookup([a for a, _ in top])]))
            idx = idx[idx >= 0]
        if len(idx) == 0:
            return idx, np.zeros(0)
        stats = self.ws.article_stats(idx, view.now)
        dc, di = stats[:, 0], stats[:, 1]
        b = self.ws.builder
        ctr = (dc + b.ctr_strength * b.ctr_prior) / (di + b.ctr_strength)
        return top_n(idx, dc * ctr / b.ctr_prior, n)

    def reason(self, view: UserView, i: int) -> str:
        return f"trending in {self.ws.catalog.category_name(i)}"
