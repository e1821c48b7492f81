"""Category affinity and exploration.

Users with history get fresh live articles from their favourite categories (score = category
share x freshness). Users without history get exploration: a deterministic pseudo-random
sample of fresh live articles (seeded by user and hour), so new users and new articles meet.
"""

from __future__ import annotations

import zlib

import numpy as np

from newsdesk.models.candidates.base import IndexedGenerator, UserView, Workspace, top_n


class CategoryGenerator(IndexedGenerator):
    name = "category"

    def __init__(self, ws: Workspace, *, freshness_hours: float = 12.0, top_categories: int = 3,
                 seed: int = 0) -> None:
        super().__init__(ws)
        self.freshness_hours = freshness_hours
        self.top_categories = top_categories
        self.seed = seed

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        cat = self.ws.catalog
        live = view.live
        if len(live) == 0:
            return live, np.zeros(0)
        if view.has_history and view.affinity.sum() > 0:
            aff = view.affinity
            favourites = np.argsort(-aff)[: self.top_categories]
            favourites = favourites[aff[favourites] > 0]
            # within one category the score is affinity x freshness, and freshness falls with
            # age alone, so each category's n best are its n newest: a per-live-set order
            # (newest first, then index) gives them without scoring the whole category; 2n
            # leave room for float ties of exp2, then the same top_n as over every article
            newest = self._newest_by_category(live)
            parts = [newest[c][: 2 * n] for c in favourites.tolist() if c in newest]
            mine = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            fresh = np.exp2(-(view.now - cat.published[mine]) / 3600.0 / self.freshness_hours)
            s = aff[np.minimum(cat.category[mine], len(aff) - 1)] * fresh
            return top_n(mine, s, n)
        fresh = np.exp2(-(view.now - cat.published[live]) / 3600.0 / self.freshness_hours)
        key = f"{self.seed}:{view.user_id}:{int(view.now // 3600)}".encode()
        rng = np.random.default_rng(zlib.crc32(key))
        return top_n(live, fresh * rng.random(len(live)), n)

    def _newest_by_category(self, live: np.ndarray) -> dict[int, np.ndarray]:
        """Each category's live catalog indices, newest first (then by index), once per live
        set."""
        def build(ix: np.ndarray) -> dict[int, np.ndarray]:
            cat = self.ws.catalog
            codes = cat.category[ix]
            order = np.lexsort((ix, -cat.published[ix], codes))
            cuts = np.flatnonzero(np.diff(codes[order])) + 1
            return {int(codes[g[0]]): ix[g] for g in np.split(order, cuts) if len(g)}

        return self.ws.derived(live, "newest_by_category", build)

    def reason(self, view: UserView, i: int) -> str:
        name = self.ws.catalog.category_name(i)
        return f"more {name}" if view.has_history else f"something new in {name}"


