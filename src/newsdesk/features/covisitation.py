"""Online co-visitation: decayed co-click counts of article pairs, updated from the event stream.

Why: the co-click generator's counts are fitted at training time, so an article published ten
minutes ago has none until the next training run. The online store counts the same pairs as
clicks arrive, so a fresh article gains "readers of A also read B" signal within minutes.

The rule is the training one (`models.candidates.coclick`): when a reader clicks B at ts, every
one of their previous `window` clicks A still in the same session (walking back from ts, each
gap between consecutive clicks <= `session_gap_s`) adds one co-click to (A, B) and to (B, A),
worth 2**(-(now - ts) / half_life) at a later read time `now`. Pairs with an unknown article
(ids starting with NUL, the logs' stand-in) and self-pairs count nothing.

Bounded memory: each article keeps at most `top_k` neighbours (when a row grows past
`2 * top_k` it is cut back to its `top_k` best, the rest being the long tail that never reaches
a candidate list), and a row idle for `ttl_s` (no co-click) is dropped: only articles read
together recently hold state. The same limits apply in every backend (the contract tests run
against memory and Redis).

Decay without rewriting: a row stores its counts scaled to its own epoch (the time of its first
co-click: 2**((ts - epoch) / half_life) per co-click), so adding is one increment and the order
of a row never changes by itself; a read multiplies by 2**(-(now - epoch) / half_life). A row
is re-based (every count scaled down, epoch moved) when its scale passes 2**64.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from newsdesk.errors import ConfigError
from newsdesk.features.online_store import Click

REBASE_HALF_LIVES = 64.0  # per-row scale 2**64: far from a double's range, rare to reach


@dataclass(frozen=True)
class CoVisitParams:
    """How clicks become co-clicks, and how much of them a store keeps.

    session_gap_s: a longer gap between two of a reader's clicks starts a new session.
    window: previous clicks of the session paired with a new click (training's `window`).
    half_life_hours: decay of a co-click's weight.
    top_k: neighbours kept per article (a row is cut back to top_k past 2 * top_k).
    ttl_s: a row without a co-click for this long is dropped.
    """

    session_gap_s: float = 1800.0
    window: int = 5
    half_life_hours: float = 24.0
    top_k: int = 50
    ttl_s: float = 3 * 86_400.0

    def __post_init__(self) -> None:
        for name in ("session_gap_s", "half_life_hours", "ttl_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"CoVisitParams.{name} must be > 0, got {value!r}")
        for name in ("window", "top_k"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"CoVisitParams.{name} must be an integer >= 1, "
                                  f"got {value!r}")


def session_partners(previous: Sequence[Click], article_id: str, ts: float,
                     params: CoVisitParams) -> list[str]:
    """The articles a click on `article_id` at ts pairs with: the reader's previous clicks
    (newest first, as the store keeps them), at most `window`, back to the session's start."""
    out: list[str] = []
    t = ts
    for click in previous[: params.window]:
        if t - click.ts > params.session_gap_s:
            break
        a = click.article_id
        if a != article_id and a[:1] != "\x00" and article_id[:1] != "\x00":
            out.append(a)
        t = click.ts
    return out


def batch_pairs(previous: dict[str, list[Click]],
                clicks: Iterable[tuple[str, str, float]], params: CoVisitParams
                ) -> list[tuple[str, str, float]]:
    """(A, B, ts) co-clicks of clicks (user, article, ts) written in this order, each reader's
    list starting as `previous[user]` (newest first): what writing them one by one counts."""
    lists = {u: list(c[: params.window]) for u, c in previous.items()}
    out: list[tuple[str, str, float]] = []
    for user, article, ts in clicks:
        prev = lists.setdefault(user, [])
        out += ((a, article, ts) for a in session_partners(prev, article, ts, params))
        prev.insert(0, Click(article, ts))
        del prev[params.window:]
    return out


class _Row:
    __slots__ = ("epoch", "last", "counts", "ranked")

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch
        self.last = epoch
        self.counts: dict[str, float] = {}
        # the counts most first (ties id-descending), kept until the next write: a row is
        # read on every request of its readers, written once per co-click
        self.ranked: list[tuple[str, float]] | None = None


class MemoryCoVisits:
    """The in-process co-visitation table (`MemoryOnlineStore` holds one; not thread-safe by
    itself: the store calls it under its lock)."""

    def __init__(self, params: CoVisitParams) -> None:
        self.params = params
        self._rows: dict[str, _Row] = {}
        self._adds = 0
        self._hl = params.half_life_hours * 3600.0
        self._weight = 1.0  # out-value of _row_at

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, a: str, b: str, ts: float) -> None:
        """One co-click of the pair (a, b) at ts, both directions."""
        self.add_click((a,), b, ts)

    def add_click(self, partners: Sequence[str], b: str, ts: float) -> None:
        """`add(a, b, ts)` for each a of `partners`, in order: a click on b and the session's
        earlier clicks it pairs with (`session_partners`).

        The per-click path of the online store (up to `window` pairs, two row updates each,
        on every click): written as one loop with its constants hoisted, because at a few
        thousand clicks/s it is most of what an event batch costs the serving process."""
        cut = 2 * self.params.top_k
        row_b: _Row | None = None
        w_b = 0.0
        for a in partners:
            row = self._row_at(a, ts)
            counts = row.counts
            counts[b] = counts.get(b, 0.0) + self._weight
            if len(counts) > cut:
                self._trim(row)
            # b's row: the same for every partner of this click, and its epoch cannot move
            # again within the click (a re-base leaves it at ts), so its weight is computed once
            if row_b is None:
                row_b = self._row_at(b, ts)
                w_b = self._weight
            counts = row_b.counts
            counts[a] = counts.get(a, 0.0) + w_b
            if len(counts) > cut:
                self._trim(row_b)
            self._adds += 1
            if self._adds % 4096 == 0:
                self.expire(ts)  # never drops row_b: it was written at ts

    def _row_at(self, a: str, ts: float) -> _Row:
        """The row of a about to get a co-click at ts (created or re-based as needed); the
        co-click's weight in that row's scale is left in `self._weight`."""
        row = self._rows.get(a)
        if row is None or not row.counts:
            row = self._rows[a] = _Row(ts)
            self._weight = 1.0
        else:
            e = (ts - row.epoch) / self._hl
            if e > REBASE_HALF_LIVES:
                shift = 2.0 ** (-e if e < 1000.0 else -1000.0)
                row.counts = {k: v * shift for k, v in row.counts.items()}
                row.epoch = ts
                e = 0.0
            self._weight = 2.0 ** (e if -1000.0 <= e <= 1000.0 else
                                   (1000.0 if e > 0 else -1000.0))
        row.ranked = None
        if ts > row.last:
            row.last = ts
        return row

    def _trim(self, row: _Row) -> None:
        """Cut a row grown past 2 * top_k back to its top_k best, in the order Redis'
        ZREMRANGEBYRANK cuts by: score, then id (str order = UTF-8 bytewise)."""
        k = self.params.top_k
        counts = row.counts
        values = sorted(counts.values())
        edge = values[-k]
        if values[-k - 1] < edge:  # no tie across the cut: the k best are those >= edge
            row.counts = {a: v for a, v in counts.items() if v >= edge}
            return
        # a tie across the cut: ids decide; two stable C-keyed sorts, not a Python key each
        items = sorted(counts.items(), key=itemgetter(0))
        items.sort(key=itemgetter(1))
        row.counts = dict(items[-k:])

    def expire(self, now: float) -> int:
        """Drop rows without a co-click for ttl_s before `now`; returns how many."""
        cut = now - self.params.ttl_s
        old = [a for a, row in self._rows.items() if row.last < cut]
        for a in old:
            del self._rows[a]
        return len(old)

    def neighbours(self, article_ids: Sequence[str], now: float, limit: int
                   ) -> list[list[tuple[str, float]]]:
        """Per id, up to `limit` (neighbour, co-clicks decayed to now), most first (ties by
        id, bytewise descending, like a Redis ZREVRANGE)."""
        hl = self.params.half_life_hours * 3600.0
        out: list[list[tuple[str, float]]] = []
        for a in article_ids:
            row = self._rows.get(a)
            if row is None or not row.counts or limit <= 0:
                out.append([])
                continue
            f = 2.0 ** max(-1000.0, min(1000.0, -(now - row.epoch) / hl))
            best = row.ranked
            if best is None:
                best = sorted(row.counts.items(), key=itemgetter(0), reverse=True)
                best.sort(key=itemgetter(1), reverse=True)  # stable: ties stay id-descending
                row.ranked = best
            out.append([(b, v * f) for b, v in best[:limit]])
        return out
