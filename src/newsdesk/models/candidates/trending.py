"""Trending: the live articles with the most time-decayed clicks, read from the online store.

The store keeps decayed counts up to date on every event (incremental, no batch job); the
score blends them with a Bayesian-smoothed CTR so that an article shown a lot but rarely
clicked does not trend: score = decayed_clicks * smoothed_ctr / prior_ctr.
"""

from __future__ import annotations

import numpy as np

from newsdesk.models.candidates.base import IndexedGenerator, UserView, top_n


class TrendingGenerator(IndexedGenerator):
    name = "trending"
    overfetch = 4  # the store ranks all articles it knows; dead ones are filtered here
    # (capped at 256: the memory store keeps an exact top-256 index, beyond it it scans)

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        cat = self.ws.catalog
        live = np.zeros(cat.size, dtype=bool)
        live[view.live] = True
        top = self.ws.store.trending(min(n * self.overfetch, 256), view.now)
        idx = cat.lookup([a for a, _ in top])
        ok = (idx >= 0) & live[np.maximum(idx, 0)]
        idx = idx[ok]
        if len(idx) < n and len(view.live) > len(idx):  # few live ones among the store's top
            top = self.ws.store.trending(n, view.now,
                                         candidates=[cat.ids[i] for i in view.live])
            idx = np.unique(np.concatenate([idx, cat.lookup([a for a, _ in top])]))
            idx = idx[idx >= 0]
        if len(idx) == 0:
            return idx, np.zeros(0)
        stats = self.ws.store.article_stats([cat.ids[i] for i in idx], view.now)
        dc = np.array([s.decayed_clicks for s in stats])
        di = np.array([s.decayed_impressions for s in stats])
        b = self.ws.builder
        ctr = (dc + b.ctr_strength * b.ctr_prior) / (di + b.ctr_strength)
        return top_n(idx, dc * ctr / b.ctr_prior, n)

    def reason(self, view: UserView, i: int) -> str:
        return f"trending in {self.ws.catalog.category_name(i)}"
