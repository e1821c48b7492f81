"""The online co-visitation as training sees it: decayed co-clicks of any pair at any past time.

Why: serving adds the online store's co-visitation (`features.covisitation`) to the co-click
feature, so an article published after training carries co-clicks there. If the ranker were
trained with that part at zero, it would learn nothing about it (a fresh article's co-click
count would be a value it never saw). `ReplayCoVisits` gives the training rows the value the
store would have held at each query time: the same session rule over the log's clicks, every
co-click event strictly before the query, decayed with the same half-life.

    rc = ReplayCoVisits.fit(user, article, ts, params, n_articles)
    rc.lookup(a, b, t)  # (N,) decayed co-clicks of (a[i], b[i]) from events before t[i]

Not modelled: the store's top-k cut of a row and its idle expiry (both drop only counts too
small to matter by then), and history lists (the store counts no co-clicks from a bootstrap's
histories either). Memory: one int64 + two float64 per co-click event (both directions).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from newsdesk.features.covisitation import CoVisitParams


@dataclass
class ReplayCoVisits:
    """Co-click events grouped by pair, with their cumulative decayed weights."""

    params: CoVisitParams
    n_articles: int
    t0: float
    pair_keys: np.ndarray  # (P,) distinct a * n + b, ascending
    event_code: np.ndarray  # (E,) int64: pair code * span + ms since t0, ascending
    cum: np.ndarray  # (E,) cumulative sum of 2**((ts - t0) / hl) within the pair
    span_ms: int

    @classmethod
    def fit(cls, user: np.ndarray, article: np.ndarray, ts: np.ndarray,
            params: CoVisitParams, n_articles: int) -> ReplayCoVisits:
        """Co-click events of clicks (user codes, catalog indices (-1: unknown), Unix s), by
        the session rule of `features.covisitation` (unknown articles hold their place in a
        reader's list but pair with nothing)."""
        user, article, ts = (np.asarray(x) for x in (user, article, ts))
        order = np.lexsort((ts, user))  # stable: equal times keep the written order
        user, article, ts = user[order], article[order], ts[order].astype(np.float64)
        t0 = float(ts.min()) if len(ts) else 0.0
        a_parts, b_parts, t_parts = [], [], []
        # back k positions is in the session when every gap on the way is <= session_gap_s
        linked = np.zeros(max(len(ts) - 1, 0), bool)
        if len(ts) > 1:
            linked = (user[1:] == user[:-1]) & (np.diff(ts) <= params.session_gap_s)
        chain = np.ones(len(linked), bool)
        for k in range(1, params.window + 1):
            if k > len(ts) - 1:
                break
            chain = chain[: len(ts) - k] & linked[k - 1:]  # links i..i+k all present
            a, b, t = article[: len(ts) - k], article[k:], ts[k:]
            keep = chain & (a >= 0) & (b >= 0) & (a != b)
            a_parts += [a[keep], b[keep]]
            b_parts += [b[keep], a[keep]]
            t_parts += [t[keep], t[keep]]
        a = np.concatenate(a_parts) if a_parts else np.zeros(0, np.int64)
        b = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int64)
        t = np.concatenate(t_parts) if t_parts else np.zeros(0)
        n = int(n_articles)
        key = a.astype(np.int64) * n + b.astype(np.int64)
        pair_keys, code = np.unique(key, return_inverse=True)
        ms = np.round((t - t0) * 1000.0).astype(np.int64)
        span = int(ms.max()) + 2 if len(ms) else 2
        composite = code.astype(np.int64) * span + ms
        order = np.argsort(composite, kind="stable")
        composite, t, code = composite[order], t[order], code[order]
        hl = params.half_life_hours * 3600.0
        w = np.power(2.0, np.clip((t - t0) / hl, -1000.0, 1000.0))
        cum = np.cumsum(w)
        # within-pair cumulative sums: subtract what the pairs before contributed
        starts = (np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if len(code)
                  else np.zeros(0, np.int64))
        before = np.zeros(len(pair_keys))
        if len(starts):
            before[code[starts]] = cum[starts] - w[starts]
        cum = cum - before[code]
        return cls(params, n, t0, pair_keys, composite, cum, span)

    def save(self, directory: Path) -> None:
        """As .npy arrays and a JSON header (no pickle): the Spark engine ships it to its
        workers with the other models."""
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("pair_keys", "event_code", "cum"):
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)
        (directory / "replay.json").write_text(json.dumps(
            {"params": asdict(self.params), "n_articles": self.n_articles, "t0": self.t0,
             "span_ms": self.span_ms}))

    @classmethod
    def load(cls, directory: Path) -> ReplayCoVisits:
        head = json.loads((directory / "replay.json").read_text())
        arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False)
                  for name in ("pair_keys", "event_code", "cum")}
        return cls(CoVisitParams(**head["params"]), int(head["n_articles"]),
                   float(head["t0"]), span_ms=int(head["span_ms"]), **arrays)

    def lookup(self, a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(N,) co-clicks of (a[i], b[i]) from events strictly before t[i], decayed to t[i];
        0 where a or b is < 0 or the pair never co-occurred."""
        a, b, t = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(t, np.float64)
        if len(self.pair_keys) == 0 or len(a) == 0:
            return np.zeros(len(a))
        ok = (a >= 0) & (b >= 0) & (a < self.n_articles) & (b < self.n_articles)
        key = np.where(ok, a * self.n_articles + b, -1)
        pos = np.minimum(np.searchsorted(self.pair_keys, key), len(self.pair_keys) - 1)
        ok &= self.pair_keys[pos] == key
        return self._values(pos, t, ok)

    def neighbours(self, b: np.ndarray, t: np.ndarray, limit: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every article co-clicked with b[i] before t[i], at most `limit` per query (the
        most co-clicked, like the store's read): (query index, neighbour, count at t)."""
        b, t = np.asarray(b, np.int64), np.asarray(t, np.float64)
        n = self.n_articles
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        if len(self.pair_keys) == 0 or len(b) == 0:
            return empty
        lo = np.searchsorted(self.pair_keys, np.where(b >= 0, b * n, -1))
        hi = np.searchsorted(self.pair_keys, np.where(b >= 0, (b + 1) * n, -1))
        sizes = np.maximum(hi - lo, 0)
        if sizes.sum() == 0:
            return empty
        q = np.repeat(np.arange(len(b)), sizes)
        starts = np.repeat(lo - np.cumsum(sizes) + sizes, sizes)
        pos = starts + np.arange(int(sizes.sum()))
        vals = self._values(pos, t[q], np.ones(len(pos), bool))
        keep = vals > 0
        q, pos, vals = q[keep], pos[keep], vals[keep]
        order = np.lexsort((-vals, q))  # per query, most first
        q, pos, vals = q[order], pos[order], vals[order]
        first = np.searchsorted(q, q)  # index of each query's first entry
        keep = np.arange(len(q)) - first < limit
        return q[keep], self.pair_keys[pos[keep]] % n, vals[keep]

    def _values(self, pos: np.ndarray, t: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Decayed counts at t of the pairs at `pos` in pair_keys (0 where not ok)."""
        out = np.zeros(len(pos))
        # queries at t see events with ms < t's (ms rounded like the events')
        q_ms = np.clip(np.round((t - self.t0) * 1000.0), 0, self.span_ms - 1).astype(np.int64)
        q = pos.astype(np.int64) * self.span_ms + q_ms
        idx = np.searchsorted(self.event_code, q, side="left") - 1
        ok = ok & (idx >= 0)
        safe = np.maximum(idx, 0)
        ok &= (self.event_code[safe] // self.span_ms) == pos
        hl = self.params.half_life_hours * 3600.0
        decay = np.power(2.0, np.clip(-(t - self.t0) / hl, -1000.0, 1000.0))
        out[ok] = self.cum[safe[ok]] * decay[ok]
        return out
