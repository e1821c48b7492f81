"""A per-process cache of article statistics in front of a shared online store.

With several serving processes the online store is Redis, and a request reads the statistics of
a few hundred candidates: one Lua call costs ~2 ms of client and server CPU, as much as the
model itself (measured in the `workers` branch notes). Article statistics move slowly — decayed
counts with a half-life of hours over thousands of readers — so each process keeps the rows it
read for `ttl_s` (default 1 s) and serves them decayed to the read time:

    decayed(now) = decayed(t_fetch) * 2**(-(now - t_fetch) / half_life)

which is exact when no event arrived since the fetch. What a cached row can miss is at most
`ttl_s` of other readers' events on that article. The global trending list (`trending` without
candidates, ~0.5 ms of Redis per request for the top 256) is cached the same way: the order of
decayed counts does not change by itself, every value scales by the same factor. A user's own
clicks are never cached (`user_clicks` and every write go straight to the store), so
read-your-writes of a user's history holds.

The rows live in numpy columns indexed by article id (one dict lookup per id, the rest
vectorised), like `MemoryOnlineStore`'s article table: a per-id Python loop cost more than the
Redis call it saved.

Why 5 s and not 1 s by default (settings.stats_cache_ttl_s): with ~400 candidates a request
over ~11k live articles, two workers at 100 req/s each look an article up a few times a second,
so a 1 s lifetime missed on about a third of the rows; at 5 s the misses are a few percent.
Measured with two workers on the quick serve_load state, the server's CPU per request fell
from 8.4 to 5.6 ms (TTL 10 s, same run). The price: an article's counts can lag other
workers' events by up to 5 s, against decayed counts with a half-life of hours. The global
trending list keeps its own 1 s lifetime (`trending_ttl_s`): it feeds the fallback path, where
a new story should show within the second.

Refresh in the background: a row read in the last `refresh_ahead` share of its lifetime, or
up to `serve_stale_s` past it, is served from the cache (decayed to the read time) and re-read
on a standing background thread, in bulk; a request reads Redis itself only for rows it has
never seen (or not for `serve_stale_s`). Before, nearly every request missed on a few of its
~400 rows (the long tail of ~11k live articles, each read less than once a lifetime) and paid
a round trip for them: with two workers at the full state, 15 % of the model thread's time
went to that read (py-spy --idle), waiting on a redis-server that shares the two cores. The
price: a rarely read article's counts can lag other workers' events by up to `serve_stale_s`
(30 s) plus one background read, against decayed counts with a half-life of hours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from newsdesk.data.schema import Impression, Interaction
from newsdesk.errors import ConfigError
from newsdesk.features.online_store import (
    ArticleStats,
    Click,
    DelegatedBulkLoads,
    OnlineStore,
)


class StatsCachingStore(DelegatedBulkLoads, OnlineStore):
    """Delegates to `inner`; `stats_matrix` rows and the global `trending` list are cached for
    `ttl_s` seconds (see the module docstring).

    Args:
        inner: the shared store (Redis).
        ttl_s: how long a fetched row is reused (monotonic seconds); > 0.
        trending_ttl_s: the same for the global trending list (at most ttl_s).
        max_entries: the cache is cleared when it grows past this (articles are few: ~10k live).
    """

    def __init__(self, inner: OnlineStore, *, ttl_s: float = 5.0, trending_ttl_s: float = 1.0,
                 max_entries: int = 200_000, refresh_ahead: float = 0.4,
                 serve_stale_s: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise ConfigError(f"ttl_s must be > 0, got {ttl_s}")
        if not 0 <= refresh_ahead < 1:
            raise ConfigError(f"refresh_ahead must be in [0, 1), got {refresh_ahead}")
        if serve_stale_s < 0:
            raise ConfigError(f"serve_stale_s must be >= 0, got {serve_stale_s}")
        self.refresh_ahead_s = refresh_ahead * ttl_s
        self.serve_stale_s = serve_stale_s
        self._due: dict[str, None] = {}  # ids to re-read in the background (ordered set)
        self._due_now = 0.0
        self._wake = threading.Event()
        self._refresher: threading.Thread | None = None
        self._closed = False
        self.refreshed = 0
        self.inner = inner
        self.ttl_s = ttl_s
        self.trending_ttl_s = min(trending_ttl_s, ttl_s)
        self.max_entries = max_entries
        self.half_life_hours = inner.half_life_hours
        self.max_user_clicks = inner.max_user_clicks
        self.max_user_exposures = inner.max_user_exposures
        self.covisit = inner.covisit
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._clear(1024)
        # n -> (list at fetch, service time of fetch, monotonic expiry)
        self._trending: dict[int, tuple[list[tuple[str, float]], float, float]] = {}
        self.hits = self.misses = 0

    def _clear(self, capacity: int) -> None:
        self._index: dict[str, int] = {}
        self._values = np.zeros((capacity, 4))  # dc, di, clicks, impressions at fetch
        self._fetched = np.zeros(capacity)  # service time of the fetch
        self._expiry = np.zeros(capacity)  # monotonic

    def _decay(self, since: np.ndarray | float, now: float) -> np.ndarray:
        exponent = np.clip(-(now - np.asarray(since)) / (self.half_life_hours * 3600.0),
                           -1000.0, 1000.0)
        return np.power(2.0, exponent)

    # -- the cached reads ----------------------------------------------------------------
    def stats_matrix(self, article_ids: Sequence[str], now: float) -> np.ndarray:
        n = len(article_ids)
        mono = self._monotonic()
        with self._lock:
            get = self._index.get
            rows = np.fromiter((get(a, -1) for a in article_ids), dtype=np.int64, count=n)
            fresh = rows >= 0  # served from the cache (fresh, or stale and re-read meanwhile)
            left = self._expiry[rows[fresh]] - mono  # life left; < 0: stale
            usable = left > -self.serve_stale_s
            fresh[fresh] = usable
            due = np.flatnonzero(fresh)[left[usable] <= self.refresh_ahead_s]
            out = np.zeros((n, 4))
            r = rows[fresh]
            out[fresh] = self._values[r]
            out[fresh, :2] *= self._decay(self._fetched[r], now)[:, None]
        if len(due):
            self._refresh_later([article_ids[i] for i in due.tolist()], now)
        missing = np.flatnonzero(~fresh)
        self.hits += n - len(missing)
        self.misses += len(missing)
        if len(missing):
            ids = [article_ids[i] for i in missing.tolist()]
            got = self.inner.stats_matrix(ids, now)
            out[missing] = got
            self._keep(ids, got, now, mono)
        return out

    def _refresh_later(self, ids: list[str], now: float) -> None:
        """Queue rows for the background re-read (a standing thread: starting one per call
        made the request wait until the new thread got a core)."""
        with self._lock:
            self._due.update(dict.fromkeys(ids))
            self._due_now = now
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_loop, daemon=True,
                                                   name="stats-cache-refresh")
                self._refresher.start()
        self._wake.set()

    def _refresh_loop(self) -> None:
        while self._wake.wait():
            self._wake.clear()
            if self._closed:
                return
            with self._lock:
                ids, now = list(self._due), self._due_now
                self._due.clear()
            if not ids:
                continue
            try:
                self._keep(ids, self.inner.stats_matrix(ids, now), now, self._monotonic())
            except Exception:  # the store is down: the rows expire, requests read and report
                continue
            self.refreshed += len(ids)  # rows re-read (tests and metrics)

    def _keep(self, ids: list[str], got: np.ndarray, now: float, mono: float) -> None:
        """Store fetched rows (read at service time `now`, monotonic `mono`)."""
        with self._lock:
            if len(self._index) + len(ids) > self.max_entries:
                self._clear(1024)
            index = self._index
            new_rows = []
            for article_id in ids:
                row = index.get(article_id)
                if row is None:
                    row = index[article_id] = len(index)
                new_rows.append(row)
            if len(index) > len(self._fetched):
                self._grow(2 * len(index))
            at = np.asarray(new_rows, dtype=np.int64)
            self._values[at] = got
            self._fetched[at] = now
            self._expiry[at] = mono + self.ttl_s

    def _grow(self, capacity: int) -> None:
        values, fetched, expiry = self._values, self._fetched, self._expiry
        self._values = np.zeros((capacity, 4))
        self._fetched = np.zeros(capacity)
        self._expiry = np.zeros(capacity)
        self._values[: len(values)] = values
        self._fetched[: len(fetched)] = fetched
        self._expiry[: len(expiry)] = expiry

    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        if candidates is not None:
            return self.inner.trending(n, now, candidates=candidates)
        mono = self._monotonic()
        cached = self._trending.get(n)
        if cached is None or cached[2] <= mono:
            top = self.inner.trending(n, now)
            self._trending[n] = (top, now, mono + self.trending_ttl_s)
            return top
        top, at, _ = cached
        factor = float(self._decay(at, now))
        return [(a, v * factor) for a, v in top]

    # -- everything else goes straight through ---------------------------------------------
    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        self.inner.record_impressions(article_ids, ts)

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self.inner.record_clicks(user_id, article_ids, ts)

    def record_events(self, events: Iterable[Impression | Interaction]) -> None:
        self.inner.record_events(events)

    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        return self.inner.user_clicks(user_id, limit)

    def record_exposures(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self.inner.record_exposures(user_id, article_ids, ts)

    def user_exposures(self, user_id: str, limit: int | None = None) -> list[Click]:
        return self.inner.user_exposures(user_id, limit)

    def user_reads(self, user_id: str, limit: int | None, markers: Sequence[str]
                   ) -> tuple[list[Click], list[str | None]]:
        return self.inner.user_reads(user_id, limit, markers)

    def user_reads_with_exposures(self, user_id: str, limit: int | None,
                                  markers: Sequence[str], exposures: int
                                  ) -> tuple[list[Click], list[str | None], list[Click]]:
        return self.inner.user_reads_with_exposures(user_id, limit, markers, exposures)

    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        return self.inner.article_stats(article_ids, now)

    def coclick_neighbours(self, article_ids: Sequence[str], now: float, limit: int
                           ) -> list[list[tuple[str, float]]]:
        return self.inner.coclick_neighbours(article_ids, now, limit)

    def ping(self) -> bool:
        return self.inner.ping()

    def ready(self) -> bool:
        return self.inner.ready()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.inner.close()
