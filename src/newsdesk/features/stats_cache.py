"""A per-process cache of article statistics in front of a shared online store.

With several serving processes the online store is Redis, and a request reads the statistics of
a few hundred candidates: one Lua call costs ~2 ms of client and server CPU, as much as the
model itself (measured in the `workers` branch notes). Article statistics move slowly — decayed
counts with a half-life of hours over thousands of readers — so each process keeps the rows it
read for `ttl_s` (default 1 s) and serves them decayed to the read time:

    decayed(now) = decayed(t_fetch) * 2**(-(now - t_fetch) / half_life)

which is exact when no event arrived since the fetch. What a cached row can miss is at most
`ttl_s` of other readers' events on that article; a process's own user clicks are never cached
(`user_clicks`, `trending` and every write go straight to the store), so read-your-writes of a
user's history holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from newsdesk.data.schema import Impression, Interaction
from newsdesk.errors import ConfigError
from newsdesk.features.online_store import ArticleStats, Click, OnlineStore


class StatsCachingStore(OnlineStore):
    """Delegates to `inner`; `stats_matrix` rows are cached per article for `ttl_s` seconds.

    Args:
        inner: the shared store (Redis).
        ttl_s: how long a fetched row is reused (monotonic seconds); > 0.
        max_entries: the cache is cleared when it grows past this (articles are few: ~10k live).
    """

    def __init__(self, inner: OnlineStore, *, ttl_s: float = 1.0, max_entries: int = 200_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise ConfigError(f"ttl_s must be > 0, got {ttl_s}")
        self.inner = inner
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.half_life_hours = inner.half_life_hours
        self.max_user_clicks = inner.max_user_clicks
        self._monotonic = monotonic
        # id -> (row [dc, di, clicks, impressions] at fetch, service time of fetch, expiry)
        self._rows: dict[str, tuple[np.ndarray, float, float]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    # -- the cached read -----------------------------------------------------------------
    def stats_matrix(self, article_ids: Sequence[str], now: float) -> np.ndarray:
        n = len(article_ids)
        out = np.zeros((n, 4), dtype=np.float64)
        fetched_at = np.full(n, now)
        mono = self._monotonic()
        missing: list[int] = []
        with self._lock:
            rows = self._rows
            for i, article_id in enumerate(article_ids):
                cached = rows.get(article_id)
                if cached is None or cached[2] <= mono:
                    missing.append(i)
                else:
                    out[i] = cached[0]
                    fetched_at[i] = cached[1]
        if missing:
            fresh = self.inner.stats_matrix([article_ids[i] for i in missing], now)
            out[missing] = fresh
            expiry = mono + self.ttl_s
            with self._lock:
                if len(self._rows) + len(missing) > self.max_entries:
                    self._rows.clear()
                for j, i in enumerate(missing):
                    self._rows[article_ids[i]] = (fresh[j].copy(), now, expiry)
        self.hits += n - len(missing)
        self.misses += len(missing)
        # decay the cached rows from their fetch time to `now` (same clamp as decay_factor)
        exponent = np.clip(-(now - fetched_at) / (self.half_life_hours * 3600.0), -1000, 1000)
        out[:, :2] *= np.power(2.0, exponent)[:, None]
        return out

    # -- everything else goes straight through ---------------------------------------------
    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        self.inner.record_impressions(article_ids, ts)

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self.inner.record_clicks(user_id, article_ids, ts)

    def record_events(self, events: Iterable[Impression | Interaction]) -> None:
        self.inner.record_events(events)

    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        return self.inner.user_clicks(user_id, limit)

    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        return self.inner.article_stats(article_ids, now)

    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        return self.inner.trending(n, now, candidates=candidates)

    def ping(self) -> bool:
        return self.inner.ping()

    def close(self) -> None:
        self.inner.close()
