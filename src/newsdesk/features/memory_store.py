"""The in-process online store: dicts behind one lock, optionally snapshotted to SQLite.

Decayed counts are kept as (value, ref_time): the count decayed to ref_time. An event at ts
moves the reference forward (value * decay(ts - ref) + 1) or, for a late event, adds its own
decayed weight (value + decay(ref - ts)); a read decays to `now`. Nothing is rewritten on a
timer.

Trending is called on every request, so it must not sort 10k articles each time. Because every
click only *increases* an article's decayed-clicks score measured against a fixed epoch
(score = clicks decayed to the epoch, i.e. value * 2**((ref - epoch) / half_life)), and the
decay to `now` multiplies every score by the same factor, the order never changes by itself:
an article can only enter the top-K by being clicked, which we see. So `_TopK` keeps the exact
top-K (K=256) up to date in O(K) per click, and `trending(n <= K)` is a slice — exact, no cache.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from newsdesk.errors import ConfigError, StoreUnavailable
from newsdesk.features.online_store import ArticleStats, Click, OnlineStore, decay_factor

# Re-base the trending epoch before scaled scores (2**(elapsed half-lives)) get near overflow.
_REBASE_HALF_LIVES = 512.0


@dataclass(slots=True)
class _Article:
    impressions: int = 0
    clicks: int = 0
    imp_value: float = 0.0
    imp_ref: float = 0.0
    clk_value: float = 0.0
    clk_ref: float = 0.0
    last_ts: float | None = None


def _bump(value: float, ref: float, ts: float, half_life_hours: float) -> tuple[float, float]:
    """Add one event at ts to a decayed count (value at ref); returns the new (value, ref)."""
    if value == 0.0:
        return 1.0, ts
    if ts >= ref:
        return value * decay_factor(ts - ref, half_life_hours) + 1.0, ts
    return value + decay_factor(ref - ts, half_life_hours), ref  # a late event


class _TopK:
    """The exact top-k articles by epoch-scaled decayed clicks (see the module docstring)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._score: dict[str, float] = {}
        self._sorted: list[tuple[float, str]] = []  # (-score, id): best first, ties by id

    def update(self, article_id: str, score: float) -> None:
        old = self._score.get(article_id)
        if old is not None:
            del self._sorted[bisect.bisect_left(self._sorted, (-old, article_id))]
        elif len(self._sorted) >= self.k:
            if (-score, article_id) >= self._sorted[-1]:
                return  # not better than the current k-th
            _, evicted = self._sorted.pop()
            del self._score[evicted]
        self._score[article_id] = score
        bisect.insort(self._sorted, (-score, article_id))

    def top(self, n: int) -> list[str]:
        return [article_id for _, article_id in self._sorted[:n]]

    def clear(self) -> None:
        self._score.clear()
        self._sorted.clear()


class MemoryOnlineStore(OnlineStore):
    """Online state in this process; `persist_path` snapshots it to SQLite (load on start).

    Args:
        half_life_hours: half-life of the decayed counts.
        max_user_clicks: recent clicks kept per user.
        persist_path: SQLite file to load at start and write on `snapshot()` / `close()`.
        snapshot_interval_s: when set (with persist_path), a background thread snapshots this
            often, so a crash loses at most that much state.
        top_k: size of the incrementally maintained trending index.
    """

    def __init__(self, *, half_life_hours: float = 6.0, max_user_clicks: int = 50,
                 persist_path: str | Path | None = None,
                 snapshot_interval_s: float | None = None, top_k: int = 256) -> None:
        if half_life_hours <= 0:
            raise ConfigError(f"half_life_hours must be > 0, got {half_life_hours}")
        if max_user_clicks < 1:
            raise ConfigError(f"max_user_clicks must be >= 1, got {max_user_clicks}")
        self.half_life_hours = half_life_hours
        self.max_user_clicks = max_user_clicks
        self.persist_path = Path(persist_path) if persist_path is not None else None
        self._lock = threading.Lock()
        self._articles: dict[str, _Article] = {}
        self._users: dict[str, deque[Click]] = {}
        self._epoch: float | None = None
        self._top = _TopK(top_k)
        self._closed = threading.Event()
        self._snapshotter: threading.Thread | None = None
        if self.persist_path is not None and self.persist_path.exists():
            self._load(self.persist_path)
        if self.persist_path is not None and snapshot_interval_s:
            self._snapshotter = threading.Thread(
                target=self._snapshot_loop, args=(snapshot_interval_s,),
                name="online-store-snapshot", daemon=True)
            self._snapshotter.start()

    # -- writes ----------------------------------------------------------------------------

    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        hl = self.half_life_hours
        with self._lock:
            for article_id in article_ids:
                art = self._articles.get(article_id)
                if art is None:
                    art = self._articles[article_id] = _Article()
                art.impressions += 1
                art.imp_value, art.imp_ref = _bump(art.imp_value, art.imp_ref, ts, hl)
                art.last_ts = ts if art.last_ts is None else max(art.last_ts, ts)

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        hl = self.half_life_hours
        with self._lock:
            if self._epoch is None:
                self._epoch = ts
            elif (ts - self._epoch) / (hl * 3600.0) > _REBASE_HALF_LIVES:
                self._rebase(ts)
            recent = self._users.get(user_id)
            if recent is None:
                recent = self._users[user_id] = deque(maxlen=self.max_user_clicks)
            for article_id in article_ids:
                art = self._articles.get(article_id)
                if art is None:
                    art = self._articles[article_id] = _Article()
                art.clicks += 1
                art.clk_value, art.clk_ref = _bump(art.clk_value, art.clk_ref, ts, hl)
                art.last_ts = ts if art.last_ts is None else max(art.last_ts, ts)
                self._top.update(article_id, self._scaled(art))
                recent.appendleft(Click(article_id, ts))

    def _scaled(self, art: _Article) -> float:
        assert self._epoch is not None
        return art.clk_value * decay_factor(self._epoch - art.clk_ref, self.half_life_hours)

    def _rebase(self, epoch: float) -> None:
        # Rare (every ~512 half-lives): rebuild the index against the new epoch.
        self._epoch = epoch
        self._top.clear()
        for article_id, art in self._articles.items():
            if art.clicks:
                self._top.update(article_id, self._scaled(art))

    # -- reads -----------------------------------------------------------------------------

    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        with self._lock:
            recent = self._users.get(user_id)
            if recent is None:
                return []
            return list(recent if limit is None else islice(recent, max(limit, 0)))

    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        with self._lock:
            return [self._stats(self._articles.get(a), now) for a in article_ids]

    def _stats(self, art: _Article | None, now: float) -> ArticleStats:
        if art is None:
            return ArticleStats()
        hl = self.half_life_hours
        return ArticleStats(
            impressions=art.impressions,
            clicks=art.clicks,
            decayed_impressions=art.imp_value * decay_factor(now - art.imp_ref, hl),
            decayed_clicks=art.clk_value * decay_factor(now - art.clk_ref, hl),
            last_event_ts=art.last_ts,
        )

    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        if n <= 0:
            return []
        hl = self.half_life_hours
        with self._lock:
            if candidates is None and n <= self._top.k:
                ids = self._top.top(n)
            else:
                pool = (self._articles if candidates is None
                        else {a: self._articles[a] for a in set(candidates)
                              if a in self._articles})
                scored = ((art.clk_value * decay_factor(now - art.clk_ref, hl), a)
                          for a, art in pool.items() if art.clicks)
                best = heapq.nsmallest(n, ((-v, a) for v, a in scored))
                return [(a, -neg) for neg, a in best if -neg > 0.0]
            out = []
            for article_id in ids:
                art = self._articles[article_id]
                value = art.clk_value * decay_factor(now - art.clk_ref, hl)
                if value > 0.0:
                    out.append((article_id, value))
            return out

    def ping(self) -> bool:
        return not self._closed.is_set()

    # -- persistence -----------------------------------------------------------------------

    def snapshot(self) -> None:
        """Write the whole state to `persist_path` in one transaction (no-op without it)."""
        if self.persist_path is None:
            return
        with self._lock:  # copy under the lock, write outside it
            articles = [(a, s.impressions, s.clicks, s.imp_value, s.imp_ref, s.clk_value,
                         s.clk_ref, s.last_ts) for a, s in self._articles.items()]
            clicks = [(u, pos, c.article_id, c.ts) for u, recent in self._users.items()
                      for pos, c in enumerate(recent)]
            meta = [("half_life_hours", repr(self.half_life_hours)),
                    ("epoch", repr(self._epoch))]
        try:
            self.persist_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.persist_path, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                _create_tables(conn)
                for table in ("meta", "articles", "user_clicks"):
                    conn.execute(f"DELETE FROM {table}")
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
                conn.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 articles)
                conn.executemany("INSERT INTO user_clicks VALUES (?, ?, ?, ?)", clicks)
                conn.execute("COMMIT")
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot snapshot online store to {self.persist_path}: "
                                   f"{exc}") from exc

    def _load(self, path: Path) -> None:
        try:
            conn = sqlite3.connect(path)
            try:
                _create_tables(conn)
                meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
                articles = conn.execute("SELECT * FROM articles").fetchall()
                clicks = conn.execute(
                    "SELECT user_id, article_id, ts FROM user_clicks ORDER BY user_id, pos"
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot load online store snapshot {path}: {exc}") from exc
        saved_hl = float(meta.get("half_life_hours", repr(self.half_life_hours)))
        if saved_hl != self.half_life_hours:
            raise ConfigError(
                f"half_life_hours={self.half_life_hours} differs from the snapshot's {saved_hl} "
                f"in {path}; its decayed counts would be wrong (delete the file to start over)")
        for row in articles:
            self._articles[row[0]] = _Article(*row[1:])
        for user_id, article_id, ts in clicks:
            recent = self._users.setdefault(user_id, deque(maxlen=self.max_user_clicks))
            if len(recent) < self.max_user_clicks:
                recent.append(Click(article_id, ts))
        epoch = meta.get("epoch", "None")
        if epoch != "None":
            self._rebase(float(epoch))

    def _snapshot_loop(self, interval_s: float) -> None:
        while not self._closed.wait(interval_s):
            with contextlib.suppress(StoreUnavailable):  # next round retries; close() reports
                self.snapshot()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._snapshotter is not None:
            self._snapshotter.join()
        self.snapshot()


def _create_tables(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS articles (article_id TEXT PRIMARY KEY, impressions INTEGER,"
        " clicks INTEGER, imp_value REAL, imp_ref REAL, clk_value REAL, clk_ref REAL,"
        " last_ts REAL)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS user_clicks (user_id TEXT, pos INTEGER, article_id TEXT,"
        " ts REAL, PRIMARY KEY (user_id, pos))")
