"""The live article set at a time, cached with the interval over which it cannot change.

Every request needs the live articles (published, not expired, not removed, young enough) and
several things derived from them: their embeddings (content search), ids (trending among live),
CF factors, categories. Recomputing them costs more than a request's own work at 10k live
articles out of a 100k catalog, yet they change only when the catalog does (its `version`) or
when the clock crosses a publish, expiry or age boundary. `LiveSets.at(now)` therefore keeps
the last `LiveSet` together with `[valid_from, valid_until)`: the next boundary is computed once
(with a 1 ms margin so float rounding of `now - max_age` can never move an article across it),
and any `now` inside the interval at the same catalog version reuses the same object, whose
`derived` memo holds the per-live-set arrays. The result is exactly
`catalog.live_indices(now, max_age_hours)`; only the work is shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from newsdesk.models.catalog import ArticleCatalog

T = TypeVar("T")
_MARGIN_S = 1e-3  # >> the rounding of `now - max_age * 3600` (~2e-7 s at 2026's Unix times)


class LiveSet:
    """Live catalog indices (ascending, read-only) and a memo of arrays derived from them."""

    def __init__(self, indices: np.ndarray, version: int, valid_from: float,
                 valid_until: float) -> None:
        indices.flags.writeable = False  # shared by every request of the interval
        self.indices = indices
        self.version = version
        self.valid_from = valid_from
        self.valid_until = valid_until
        self._memo: dict[str, Any] = {}
        self._lock = threading.Lock()

    def covers(self, version: int, now: float) -> bool:
        return version == self.version and (
            self.valid_from <= now < self.valid_until or now == self.valid_from)

    def derived(self, name: str, build: Callable[[np.ndarray], T]) -> T:
        """`build(indices)`, computed once per live set (a key per kind of derived array)."""
        memo = self._memo
        if name in memo:
            return memo[name]  # type: ignore[no-any-return]
        with self._lock:
            if name not in memo:
                memo[name] = build(self.indices)
            return memo[name]  # type: ignore[no-any-return]


class LiveSets:
    """The current `LiveSet` of one catalog and live horizon (see the module docstring)."""

    def __init__(self, catalog: ArticleCatalog, max_age_hours: float | None) -> None:
        self.catalog = catalog
        self.max_age_hours = max_age_hours
        self._current: LiveSet | None = None

    @property
    def current(self) -> LiveSet | None:
        """The last live set handed out (None before the first request)."""
        return self._current

    def at(self, now: float) -> LiveSet:
        cat = self.catalog
        version = cat.version  # read before the arrays: a concurrent write bumps it after
        cur = self._current
        if cur is not None and cur.covers(version, now):
            return cur
        cur = self._current = self._compute(version, now)
        return cur

    def _compute(self, version: int, now: float) -> LiveSet:
        cat = self.catalog
        n = cat.size
        live, published, expires = cat.live[:n], cat.published[:n], cat.expires[:n]
        ok = live & (published <= now) & (expires > now)
        if self.max_age_hours is not None:
            ok &= published >= now - self.max_age_hours * 3600.0
        indices = np.flatnonzero(ok)
        # the earliest time any article can enter (publish) or leave (expiry, age) the set;
        # articles out by age or expiry never come back as time moves forward
        until = np.inf
        coming = published[live & (published > now)]
        if len(coming):
            until = min(until, float(coming.min()))
        going = expires[indices]
        going = going[np.isfinite(going)]
        if len(going):
            until = min(until, float(going.min()))
        if self.max_age_hours is not None and len(indices):
            until = min(until, float(published[indices].min()) + self.max_age_hours * 3600.0)
        until -= _MARGIN_S
        return LiveSet(indices, version, now, max(until, now))
