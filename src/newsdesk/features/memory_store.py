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

Article counters live in numpy columns (`_ArticleTable`, one row per article id, rows never
reused), so a request's reads of a few hundred articles — and trending among 10k live ones —
are vectorised instead of a Python loop building one object per id.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice, repeat
from pathlib import Path

import numpy as np

from newsdesk.data.schema import Impression, Interaction, InteractionType
from newsdesk.errors import ConfigError, StoreUnavailable
from newsdesk.features.covisitation import CoVisitParams, MemoryCoVisits, session_partners
from newsdesk.features.dismissals import apply_dismissals
from newsdesk.features.online_store import (
    ArticleCounts,
    ArticleStats,
    Click,
    OnlineStore,
    decay_factor,
    merge_click_lists,
    merge_decayed,
)

# Re-base the trending epoch before scaled scores (2**(elapsed half-lives)) get near overflow.
_REBASE_HALF_LIVES = 512.0
_MARKER = "marker:"  # meta-table prefix of the store's markers
# meta row present while a process has the snapshot file open: found at load, the previous
# owner died without close() (SIGKILL, power loss), so the snapshot misses what came after it
_OPEN_BY = "open_by"
# events applied per hold of the store's lock by record_events: long enough to amortise the
# lock, short enough (~1 ms) that a request's read never waits long behind a batch
_APPLY_CHUNK = 64


class _ArticleTable:
    """Per-article counters as columns; `row[id]` is the article's row (stable, never reused).

    last_ts is NaN before the first event. Writes go through Python floats (exact same
    arithmetic as before), reads gather whole columns."""

    def __init__(self, capacity: int = 1024) -> None:
        self.row: dict[str, int] = {}
        self.ids: list[str] = []
        self.n = 0
        self.impressions = self.clicks = np.zeros(0, np.int64)
        self.imp_value = self.imp_ref = self.clk_value = self.clk_ref = np.zeros(0)
        self.last_ts = np.zeros(0)
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        def grow(name: str, dtype: type, fill: float) -> None:
            new = np.full(capacity, fill, dtype=dtype)
            new[: self.n] = getattr(self, name)[: self.n]
            setattr(self, name, new)

        for name in ("impressions", "clicks"):
            grow(name, np.int64, 0)
        for name in ("imp_value", "imp_ref", "clk_value", "clk_ref"):
            grow(name, np.float64, 0.0)
        grow("last_ts", np.float64, np.nan)

    def add(self, article_id: str) -> int:
        r = self.n
        if r >= len(self.impressions):
            self._alloc(2 * len(self.impressions))
        self.row[article_id] = r
        self.ids.append(article_id)
        self.n = r + 1
        return r

    def get_or_add(self, article_id: str) -> int:
        r = self.row.get(article_id)
        return self.add(article_id) if r is None else r

    def rows(self, article_ids: Iterable[str], count: int = -1) -> np.ndarray:
        """Rows of ids, -1 for ids never seen; shape (len(article_ids),)."""
        # map() over dict.get: half the cost of a generator expression per id
        return np.fromiter(map(self.row.get, article_ids, repeat(-1)), dtype=np.int64,
                           count=count)

    def touch(self, r: int, ts: float) -> None:
        last = self.last_ts[r]
        if not last >= ts:  # NaN (no event yet) or older
            self.last_ts[r] = ts


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
        # (-score, id, table row): best first, ties by id (ids are unique: rows never compared)
        self._sorted: list[tuple[float, str, int]] = []

    def update(self, article_id: str, score: float, row: int) -> None:
        old = self._score.get(article_id)
        if old is not None:
            del self._sorted[bisect.bisect_left(self._sorted, (-old, article_id))]
        elif len(self._sorted) >= self.k:
            if (-score, article_id) >= self._sorted[-1]:
                return  # not better than the current k-th
            _, evicted, _ = self._sorted.pop()
            del self._score[evicted]
        self._score[article_id] = score
        bisect.insort(self._sorted, (-score, article_id, row))

    def top(self, n: int) -> list[str]:
        return [article_id for _, article_id, _ in self._sorted[:n]]

    def top_rows(self, n: int) -> tuple[list[str], list[int]]:
        """(ids, table rows) of the n best."""
        best = self._sorted[:n]
        return [a for _, a, _ in best], [r for _, _, r in best]

    def clear(self) -> None:
        self._score.clear()
        self._sorted.clear()


class MemoryOnlineStore(OnlineStore):
    """Online state in this process; `persist_path` snapshots it to SQLite (load on start).

    Args:
        half_life_hours: half-life of the decayed counts.
        max_user_clicks: recent clicks kept per user.
        max_user_exposures: articles shown kept per user (0: none; a bundle with the
            story_exposures feature needs its recent_exposures).
        persist_path: SQLite file to load at start and write on `snapshot()` / `close()`.
        snapshot_interval_s: when set (with persist_path), a background thread snapshots this
            often, so a crash loses at most that much state.
        top_k: size of the incrementally maintained trending index.
        covisit: online co-visitation parameters (`features.covisitation`); its counts are
            not snapshotted (decayed, they rebuild from the next day of clicks).
    """

    covisit: CoVisitParams  # always set: these backends count online co-visitation

    def __init__(self, *, half_life_hours: float = 6.0, max_user_clicks: int = 50,
                 max_user_exposures: int = 0, persist_path: str | Path | None = None,
                 snapshot_interval_s: float | None = None, top_k: int = 256,
                 covisit: CoVisitParams | None = None) -> None:
        if half_life_hours <= 0:
            raise ConfigError(f"half_life_hours must be > 0, got {half_life_hours}")
        if max_user_clicks < 1:
            raise ConfigError(f"max_user_clicks must be >= 1, got {max_user_clicks}")
        self.half_life_hours = half_life_hours
        self.max_user_clicks = max_user_clicks
        if max_user_exposures < 0:
            raise ConfigError(f"max_user_exposures must be >= 0, got {max_user_exposures}")
        self.max_user_exposures = max_user_exposures
        self.persist_path = Path(persist_path) if persist_path is not None else None
        self._lock = threading.Lock()
        # orders snapshots and erasures on disk: a snapshot copied before an erasure must not
        # be written after it (the erased reader would come back at the next start)
        self._persist_lock = threading.Lock()
        self._art = _ArticleTable()
        self._row_epoch = 0
        self._cand_cache: tuple[tuple[str, ...], np.ndarray, int] | None = None
        self._users: dict[str, deque[Click]] = {}
        self._shown: dict[str, deque[Click]] = {}  # exposures per reader
        self._epoch: float | None = None
        self._top = _TopK(top_k)
        self._markers: dict[str, str] = {}
        self.covisit = covisit or CoVisitParams()
        self._co = MemoryCoVisits(self.covisit)
        self._closed = threading.Event()
        self._snapshotter: threading.Thread | None = None
        self.unclean = False  # the snapshot was left by a process that did not close it
        if self.persist_path is not None and self.persist_path.exists():
            self._load(self.persist_path)
        if self.persist_path is not None:
            self._mark_open()
        if self.persist_path is not None and snapshot_interval_s:
            self._snapshotter = threading.Thread(
                target=self._snapshot_loop, args=(snapshot_interval_s,),
                name="online-store-snapshot", daemon=True)
            self._snapshotter.start()

    # -- writes ----------------------------------------------------------------------------

    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        with self._lock:
            self._impressions_locked(article_ids, ts)

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        with self._lock:
            self._clicks_locked(user_id, article_ids, ts)

    def record_exposures(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        with self._lock:
            self._exposures_locked(user_id, article_ids, ts)

    def record_events(self, events: Iterable[Impression | Interaction]) -> None:
        """The base class's rule (impressions, clicks, then dismissals), taking the lock once
        per `_APPLY_CHUNK` events instead of once per event: the event route applies batches
        of hundreds from several I/O threads, and a lock taken and dropped per click made
        them convoy behind each other (and the GIL) while requests waited for their reads."""
        events = list(events)
        click = InteractionType.CLICK
        for lo in range(0, len(events), _APPLY_CHUNK):
            with self._lock:
                for event in events[lo:lo + _APPLY_CHUNK]:
                    if isinstance(event, Impression):
                        ts = event.timestamp.timestamp()
                        self._impressions_locked(event.article_ids, ts)
                        self._exposures_locked(event.user_id, event.article_ids, ts)
                    elif event.type is click:
                        self._clicks_locked(event.user_id, (event.article_id,),
                                            event.timestamp.timestamp())
        apply_dismissals(self, events)

    def _impressions_locked(self, article_ids: Sequence[str], ts: float) -> None:
        hl = self.half_life_hours
        t = self._art
        for article_id in article_ids:
            r = t.get_or_add(article_id)
            t.impressions[r] += 1
            t.imp_value[r], t.imp_ref[r] = _bump(float(t.imp_value[r]), float(t.imp_ref[r]),
                                                 ts, hl)
            t.touch(r, ts)

    def _exposures_locked(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        if self.max_user_exposures <= 0 or not article_ids:
            return
        shown = self._shown.get(user_id)
        if shown is None:
            shown = self._shown[user_id] = deque(maxlen=self.max_user_exposures)
        shown.extendleft(Click(a, ts) for a in article_ids)

    def _clicks_locked(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        hl = self.half_life_hours
        t = self._art
        if self._epoch is None:
            self._epoch = ts
        elif (ts - self._epoch) / (hl * 3600.0) > _REBASE_HALF_LIVES:
            self._rebase(ts)
        recent = self._users.get(user_id)
        if recent is None:
            recent = self._users[user_id] = deque(maxlen=self.max_user_clicks)
        window = self.covisit.window
        for article_id in article_ids:
            r = t.get_or_add(article_id)
            t.clicks[r] += 1
            t.clk_value[r], t.clk_ref[r] = _bump(float(t.clk_value[r]), float(t.clk_ref[r]),
                                                 ts, hl)
            t.touch(r, ts)
            self._top.update(article_id, self._scaled(r), r)
            if recent:
                partners = session_partners(list(islice(recent, window)), article_id, ts,
                                            self.covisit)
                if partners:
                    self._co.add_click(partners, article_id, ts)
            recent.appendleft(Click(article_id, ts))

    def _scaled(self, r: int) -> float:
        assert self._epoch is not None
        t = self._art
        return float(t.clk_value[r]) * decay_factor(self._epoch - float(t.clk_ref[r]),
                                                    self.half_life_hours)

    def _rebase(self, epoch: float) -> None:
        # Rare (every ~512 half-lives): rebuild the index against the new epoch.
        self._epoch = epoch
        self._top.clear()
        t = self._art
        for r in np.flatnonzero(t.clicks[: t.n] > 0).tolist():
            self._top.update(t.ids[r], self._scaled(r), r)

    # -- bulk loading and markers -----------------------------------------------------------

    def merge_article_counts(self, counts: ArticleCounts) -> None:
        if not len(counts):
            return
        hl = self.half_life_hours
        t = self._art
        with self._lock:
            rows = np.fromiter((t.get_or_add(a) for a in counts.ids), np.int64, len(counts))
            t.impressions[rows] += counts.impressions
            t.clicks[rows] += counts.clicks
            t.imp_value[rows], t.imp_ref[rows] = merge_decayed(
                t.imp_value[rows], t.imp_ref[rows], counts.imp_value, counts.imp_ref, hl)
            t.clk_value[rows], t.clk_ref[rows] = merge_decayed(
                t.clk_value[rows], t.clk_ref[rows], counts.clk_value, counts.clk_ref, hl)
            last = t.last_ts[rows]
            t.last_ts[rows] = np.where(np.isnan(last) | (counts.last_ts > last),
                                       counts.last_ts, last)
            clicked = rows[counts.clicks > 0]
            if len(clicked):
                newest = float(t.clk_ref[clicked].max())
                if self._epoch is None:
                    self._epoch = newest
                elif (newest - self._epoch) / (hl * 3600.0) > _REBASE_HALF_LIVES:
                    self._rebase(newest)
                for r in clicked.tolist():
                    self._top.update(t.ids[r], self._scaled(r), r)

    def merge_user_clicks(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        return self._merge_lists("_users", users, self.max_user_clicks)

    def merge_user_exposures(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        return self._merge_lists("_shown", users, self.max_user_exposures)

    def _merge_lists(self, table: str, users: Iterable[tuple[str, Sequence[Click]]],
                     cap: int) -> int:
        """Merge each user's list (newest first) into `table` by time; cap 0 keeps none."""
        n = 0
        with self._lock:
            lists: dict[str, deque[Click]] = getattr(self, table)
            for user_id, items in users:
                if cap > 0:
                    old = lists.get(user_id)
                    merged = merge_click_lists(list(old) if old else [], items, cap)
                    lists[user_id] = deque(merged, maxlen=cap)
                n += 1
        return n

    def merge_coclicks(self, pairs: Sequence[tuple[str, str, float]]) -> None:
        with self._lock:
            for a, b, ts in pairs:
                self._co.add(a, b, ts)

    def coclick_neighbours(self, article_ids: Sequence[str], now: float, limit: int
                           ) -> list[list[tuple[str, float]]]:
        with self._lock:
            return self._co.neighbours(article_ids, now, limit)

    def read_marker(self, name: str) -> str | None:
        with self._lock:
            return self._markers.get(name)

    def write_marker(self, name: str, value: str) -> None:
        with self._lock:
            self._markers[name] = value

    def claim_marker(self, name: str, value: str) -> bool:
        # the store lives in one process, so its lock makes the claim atomic
        with self._lock:
            if name in self._markers:
                return False
            self._markers[name] = value
            return True

    def delete_marker(self, name: str) -> None:
        with self._lock:
            self._markers.pop(name, None)

    # -- reads -----------------------------------------------------------------------------

    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        return self._newest("_users", user_id, limit)

    def user_exposures(self, user_id: str, limit: int | None = None) -> list[Click]:
        return self._newest("_shown", user_id, limit)

    def _newest(self, table: str, user_id: str, limit: int | None) -> list[Click]:
        with self._lock:  # the table is looked up under the lock: clear() replaces it
            items = getattr(self, table).get(user_id)
            if items is None:
                return []
            return list(items if limit is None else islice(items, max(limit, 0)))

    def _decayed(self, value: np.ndarray, ref: np.ndarray, now: float) -> np.ndarray:
        """value * decay_factor(now - ref) elementwise (same clamp as `decay_factor`)."""
        exponent = -(now - ref) / (self.half_life_hours * 3600.0)
        return value * np.power(2.0, np.clip(exponent, -1000.0, 1000.0))

    def _gather(self, rows: np.ndarray, now: float) -> np.ndarray:
        """(len(rows), 5): decayed clicks, decayed impressions, clicks, impressions, last_ts;
        zeros (last_ts NaN) for rows < 0. Call under the lock."""
        t = self._art
        out = np.zeros((len(rows), 5), dtype=np.float64)
        out[:, 4] = np.nan
        # a handle past the table is one a caller kept across a clear() (see row_epoch) and
        # used before it noticed: unknown, never an IndexError in the request
        known = (rows >= 0) & (rows < t.n)
        r = rows[known]
        if len(r):
            out[known, 0] = self._decayed(t.clk_value[r], t.clk_ref[r], now)
            out[known, 1] = self._decayed(t.imp_value[r], t.imp_ref[r], now)
            out[known, 2] = t.clicks[r]
            out[known, 3] = t.impressions[r]
            out[known, 4] = t.last_ts[r]
        return out

    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        with self._lock:
            m = self._gather(self._art.rows(article_ids, len(article_ids)), now)
        return [ArticleStats(int(ci), int(cc), di, dc, None if lt != lt else lt)
                for dc, di, cc, ci, lt in m.tolist()]

    def stats_matrix(self, article_ids: Sequence[str], now: float) -> np.ndarray:
        with self._lock:
            return self._gather(self._art.rows(article_ids, len(article_ids)), now)[:, :4]

    def article_rows(self, article_ids: Sequence[str]) -> np.ndarray:
        with self._lock:  # rows are never reused, so a handle stays valid
            return self._art.rows(article_ids, len(article_ids))

    def row_epoch(self) -> int:
        return self._row_epoch

    def stats_rows(self, rows: np.ndarray, now: float) -> np.ndarray:
        with self._lock:
            return self._gather(np.asarray(rows, dtype=np.int64), now)[:, :4]

    def _candidate_rows(self, candidates: Iterable[str]) -> np.ndarray:
        """Distinct known rows of `candidates`. A tuple passed again (the same object: tuples
        cannot change) reuses its id lookups, re-resolving only ids unknown last time when the
        store has learnt new articles since. Call under the lock."""
        t = self._art
        cached = self._cand_cache
        if cached is not None and cached[0] is candidates:
            _, rows, n_seen = cached
            if n_seen != t.n:
                missing = np.flatnonzero(rows < 0)
                rows[missing] = t.rows([candidates[i] for i in missing.tolist()], len(missing))
                self._cand_cache = (candidates, rows, t.n)
        else:
            rows = t.rows(candidates)
            if isinstance(candidates, tuple):
                self._cand_cache = (candidates, rows, t.n)
        rows = np.unique(rows)
        return rows[rows >= 0]

    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        if n <= 0:
            return []
        hl = self.half_life_hours
        t = self._art
        with self._lock:
            if candidates is None and n <= self._top.k:
                # called on every request: one gather of the top rows, then decay_factor's
                # arithmetic inlined on Python floats (same values, no per-item calls)
                ids, top_rows = self._top.top_rows(n)
                scale = hl * 3600.0
                out = []
                for article_id, value, ref in zip(ids, t.clk_value[top_rows].tolist(),
                                                  t.clk_ref[top_rows].tolist(), strict=True):
                    value *= 2.0 ** max(-1000.0, min(1000.0, -(now - ref) / scale))
                    if value > 0.0:
                        out.append((article_id, value))
                return out
            if candidates is None:
                rows = np.arange(t.n, dtype=np.int64)
            else:
                rows = self._candidate_rows(candidates)
            rows = rows[t.clicks[rows] > 0]
            values = self._decayed(t.clk_value[rows], t.clk_ref[rows], now)
            keep = values > 0.0
            rows, values = rows[keep], values[keep]
            if len(values) > n:  # everything tied with the n-th value, then exact order
                threshold = np.partition(values, len(values) - n)[len(values) - n]
                keep = values >= threshold
                rows, values = rows[keep], values[keep]
            ids = t.ids
            best = sorted(zip((-values).tolist(), [ids[r] for r in rows.tolist()], strict=True))
            return [(a, -neg) for neg, a in best[:n]]

    def ping(self) -> bool:
        return not self._closed.is_set()

    def forget_user(self, user_id: str) -> bool:
        with self._persist_lock:
            with self._lock:
                known = self._users.pop(user_id, None) is not None
                known = self._shown.pop(user_id, None) is not None or known
            if self.persist_path is not None and self.persist_path.exists():
                try:
                    conn = sqlite3.connect(self.persist_path, isolation_level=None)
                    try:
                        conn.execute("PRAGMA secure_delete=ON")  # overwrite, not just unlink
                        _create_tables(conn)
                        cur = conn.execute("DELETE FROM user_clicks WHERE user_id = ?",
                                           (user_id,))
                        known = known or cur.rowcount > 0
                        cur = conn.execute("DELETE FROM user_exposures WHERE user_id = ?",
                                           (user_id,))
                        known = known or cur.rowcount > 0
                    finally:
                        conn.close()
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"cannot erase a user from {self.persist_path}: "
                                           f"{exc}") from exc
        return known

    # -- persistence -----------------------------------------------------------------------

    def snapshot(self) -> None:
        """Write the whole state to `persist_path` in one transaction (no-op without it)."""
        if self.persist_path is None:
            return
        with self._persist_lock:
            self._snapshot()

    def _snapshot(self) -> None:
        assert self.persist_path is not None
        with self._lock:  # copy under the lock, write outside it
            t, n = self._art, self._art.n
            articles = list(zip(t.ids, t.impressions[:n].tolist(), t.clicks[:n].tolist(),
                                t.imp_value[:n].tolist(), t.imp_ref[:n].tolist(),
                                t.clk_value[:n].tolist(), t.clk_ref[:n].tolist(),
                                [None if x != x else x for x in t.last_ts[:n].tolist()],
                                strict=True))
            clicks = [(u, pos, c.article_id, c.ts) for u, recent in self._users.items()
                      for pos, c in enumerate(recent)]
            shown = [(u, pos, c.article_id, c.ts) for u, recent in self._shown.items()
                     for pos, c in enumerate(recent)]
            meta = [("half_life_hours", repr(self.half_life_hours)),
                    ("epoch", repr(self._epoch)),
                    *((_MARKER + k, v) for k, v in self._markers.items())]
            if not self._closed.is_set():  # a periodic snapshot: still open
                meta.append((_OPEN_BY, str(os.getpid())))
        try:
            self.persist_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.persist_path, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                _create_tables(conn)
                for table in ("meta", "articles", "user_clicks", "user_exposures"):
                    conn.execute(f"DELETE FROM {table}")
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
                conn.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 articles)
                conn.executemany("INSERT INTO user_clicks VALUES (?, ?, ?, ?)", clicks)
                conn.executemany("INSERT INTO user_exposures VALUES (?, ?, ?, ?)", shown)
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
                shown = conn.execute(
                    "SELECT user_id, article_id, ts FROM user_exposures ORDER BY user_id, pos"
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
        t = self._art
        for row in articles:
            r = t.get_or_add(row[0])
            (t.impressions[r], t.clicks[r], t.imp_value[r], t.imp_ref[r], t.clk_value[r],
             t.clk_ref[r]) = row[1:7]
            t.last_ts[r] = np.nan if row[7] is None else row[7]
        for lists, rows, cap in ((self._users, clicks, self.max_user_clicks),
                                 (self._shown, shown, self.max_user_exposures)):
            for user_id, article_id, ts in rows if cap > 0 else ():
                items = lists.setdefault(user_id, deque(maxlen=cap))
                if len(items) < cap:
                    items.append(Click(article_id, ts))
        self._markers = {k[len(_MARKER):]: v for k, v in meta.items() if k.startswith(_MARKER)}
        self.unclean = _OPEN_BY in meta
        epoch = meta.get("epoch", "None")
        if epoch != "None":
            self._rebase(float(epoch))

    def _mark_open(self) -> None:
        """Record in the snapshot file that a process has it open (close() clears it)."""
        assert self.persist_path is not None
        try:
            self.persist_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.persist_path, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                _create_tables(conn)
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             (_OPEN_BY, str(os.getpid())))
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open online store snapshot {self.persist_path}: "
                                   f"{exc}") from exc

    def clear(self) -> None:
        """Drop the whole state, markers included (a rebuild starts from here)."""
        with self._lock:
            self._art = _ArticleTable()
            self._row_epoch += 1  # the old table's row handles mean nothing now
            self._cand_cache = None
            self._users = {}
            self._shown = {}
            self._epoch = None
            self._top.clear()
            self._markers = {}
            self._co = MemoryCoVisits(self.covisit)

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
    conn.execute(
        "CREATE TABLE IF NOT EXISTS user_exposures (user_id TEXT, pos INTEGER, article_id TEXT,"
        " ts REAL, PRIMARY KEY (user_id, pos))")
