"""Recency: the newest live articles; how articles without any click reach users (cold start)."""

from __future__ import annotations

import numpy as np

from newsdesk.models.candidates.base import IndexedGenerator, UserView, top_n


class RecencyGenerator(IndexedGenerator):
    name = "recency"

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        live = view.live
        published = self.ws.catalog.published
        newest = self._newest_first(live)
        if 0 < n < len(newest):
            # the score (-age in hours) orders like the publish time, so the answer is among
            # the newest; it is taken from them when no tie straddles the n-th place (ties
            # are broken by index, which the publish order does not know)
            head = newest[: n + 1]
            scores = -(view.now - published[head]) / 3600.0
            if scores[n - 1] > scores[n]:
                return top_n(head[:n], scores[:n], n)
        return top_n(live, -(view.now - published[live]) / 3600.0, n)  # score: -age in hours

    def _newest_first(self, live: np.ndarray) -> np.ndarray:
        """`live` by publish time, newest first, once per live set."""
        published = self.ws.catalog.published
        return self.ws.derived(live, "newest_first",
                               lambda ix: ix[np.argsort(-published[ix], kind="stable")])

    def reason(self, view: UserView, i: int) -> str:
        return f"new in {self.ws.catalog.category_name(i)}"
