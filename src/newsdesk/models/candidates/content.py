"""Content-based: live articles closest to the user's profile (recency-weighted mean embedding
of their clicks). Exact inner-product search: at 10k live articles x 384 dims this is one
~4 M-flop matrix-vector product, faster than an ANN round trip; new articles are searchable as
soon as they are upserted (embedded on the way in), which is the other cold-start path."""

from __future__ import annotations

import numpy as np

from newsdesk.models.candidates.base import (
    IndexedGenerator,
    UserView,
    because_you_read,
    top_n,
)


class ContentGenerator(IndexedGenerator):
    name = "content"

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        if not view.has_history or len(view.live) == 0:
            return view.live[:0], np.zeros(0)
        sims = self.ws.live_embeddings(view.live) @ view.profile
        return top_n(view.live, sims.astype(np.float64), n)

    def neighbours(self, i: int, live: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Live articles most similar to article i (itself excluded)."""
        sims = (self.ws.live_embeddings(live) @ self.ws.catalog.embeddings[i]).astype(np.float64)
        other = live != i
        return top_n(live[other], sims[other], n)

    def reason(self, view: UserView, i: int) -> str:
        return because_you_read(self.ws, view, i)
