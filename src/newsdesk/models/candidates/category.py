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
        fresh = np.exp2(-(view.now - cat.published[live]) / 3600.0 / self.freshness_hours)
        if view.has_history and view.affinity.sum() > 0:
            aff = view.affinity
            favourites = np.argsort(-aff)[: self.top_categories]
            favourites = favourites[aff[favourites] > 0]
            codes = cat.category[live]
            mine = np.isin(codes, favourites)
            s = aff[np.minimum(codes, len(aff) - 1)] * fresh
            return top_n(live[mine], s[mine], n)
        key = f"{self.seed}:{view.user_id}:{int(view.now // 3600)}".encode()
        rng = np.random.default_rng(zlib.crc32(key))
        return top_n(live, fresh * rng.random(len(live)), n)

    def reason(self, view: UserView, i: int) -> str:
        name = self.ws.catalog.category_name(i)
        return f"more {name}" if view.has_history else f"something new in {name}"


