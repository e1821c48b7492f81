"""Recency: the newest live articles; how articles without any click reach users (cold start)."""

from __future__ import annotations

import numpy as np

from newsdesk.models.candidates.base import IndexedGenerator, UserView, top_n


class RecencyGenerator(IndexedGenerator):
    name = "recency"

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        published = self.ws.catalog.published[view.live]
        return top_n(view.live, -(view.now - published) / 3600.0, n)  # score: -age in hours

    def reason(self, view: UserView, i: int) -> str:
        return f"new in {self.ws.catalog.category_name(i)}"
