"""Point-in-time replay of an event log into `RankingInputs` (the training side of parity).

For a logged impression at time t, the online path would read from the `OnlineStore` the state
left by every event strictly before t: the user's newest `recent_clicks` clicks and each shown
article's raw and exponentially decayed click / impression counts, decayed to t. This module
computes exactly that for many impressions at once, without a store:

* article counts are replayed in time order, vectorised per time bucket (`bucket_seconds`):
  dense per-article state is decayed and updated bucket by bucket, and the events of a query's
  own bucket that precede it are added with a segmented cumulative sum, so the result is exact
  (not rounded to the bucket start);
* user click lists come from one (user, time-rank) sort and `searchsorted`, no loop.

Timestamps are compared as integer microseconds (via a global rank), so "strictly before" is
exact. History clicks (pre-log, `histories` table) come before every logged event in the user
lists, oldest first, and count as article clicks at their `as_of` time (as in a seeded store).
Cost: O(events + buckets * articles + rows); memory O(articles + rows * recent_clicks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from newsdesk.features.ranking_features import RankingInputs

LN2 = float(np.log(2.0))


@dataclass
class EventArrays:
    """The replayed events, as catalog indices (-1 = article not in the catalog) and codes.

    clicks:      click_user (codes into user_ids), click_article, click_ts (Unix s)
    exposures:   exp_article, exp_ts (one row per shown article per impression), exp_user (the
                 reader shown it; None when not known: no per-reader exposure lists)
    histories:   hist_user, hist_article, hist_ts (the `as_of` time), oldest first per user
    keys:        click_key, exp_key, hist_key: the same events' article *statistics keys*, which
                 also cover articles missing from the catalog (codes >= the catalog size), so
                 their counts are replayed as the online store (keyed by id) keeps them; None
                 means "the catalog index" (every article known)
    """

    user_ids: list[str]
    click_user: np.ndarray
    click_article: np.ndarray
    click_ts: np.ndarray
    exp_article: np.ndarray
    exp_ts: np.ndarray
    hist_user: np.ndarray
    hist_article: np.ndarray
    hist_ts: np.ndarray
    click_key: np.ndarray | None = None
    exp_key: np.ndarray | None = None
    hist_key: np.ndarray | None = None
    n_keys: int = 0  # statistics keys in use (>= catalog size when keys are given)
    exp_user: np.ndarray | None = None


@dataclass
class QueryRows:
    """Impressions to featurise: Q queries (user code, time) and R rows (article, position).

    row_key: the row's statistics key (see `EventArrays`); None = row_article."""

    query_user: np.ndarray
    query_ts: np.ndarray
    row_query: np.ndarray
    row_article: np.ndarray
    row_position: np.ndarray
    row_key: np.ndarray | None = None


_CHUNK = 1 << 22  # elements per chunk of the whole-log passes (bounds their temporaries)


def _us(ts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(ts, dtype=np.float64) * 1e6).astype(np.int64)


class _TimeRanks:
    """Dense ranks of microsecond timestamps; rank 0 is reserved for 'before everything'.

    Built and queried in chunks: a log of N events costs O(unique times) extra memory, not
    several (N,) temporaries."""

    def __init__(self, *arrays: np.ndarray) -> None:
        parts = [np.unique(_us(a[lo:lo + _CHUNK]))
                 for a in arrays for lo in range(0, len(a), _CHUNK)]
        self.values = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def __call__(self, ts: np.ndarray, dtype: type = np.int64) -> np.ndarray:
        out = np.empty(len(ts), dtype)
        for lo in range(0, len(ts), _CHUNK):
            out[lo:lo + _CHUNK] = np.searchsorted(self.values, _us(ts[lo:lo + _CHUNK])) + 1
        return out

    @property
    def size(self) -> int:
        return len(self.values) + 2


def _newest_before(user: np.ndarray, rank: np.ndarray, tie: np.ndarray, queries: QueryRows,
                   n: int, ranks: _TimeRanks) -> np.ndarray:
    """(Q, n) positions into the events of each query user's n newest events strictly before
    the query's time, newest first (order: rank, then `tie`); -1 where there are fewer."""
    order = np.lexsort((tie, rank, user))
    key = user[order] * ranks.size + rank[order]
    qu = queries.query_user.astype(np.int64)
    end = np.searchsorted(key, qu * ranks.size + ranks(queries.query_ts), side="left")
    start = np.searchsorted(key, qu * ranks.size, side="left")
    take = end[:, None] - 1 - np.arange(n)[None, :]  # newest first
    valid = take >= start[:, None]
    if len(order) == 0:
        return np.full(take.shape, -1, np.int64)
    return np.where(valid, order[np.where(valid, take, 0)], -1)


def user_click_lists(events: EventArrays, queries: QueryRows, recent_clicks: int,
                     ranks: _TimeRanks | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(click_idx (Q, L), click_ts (Q, L)): each query user's newest clicks before its time."""
    ranks = ranks or _TimeRanks(events.click_ts, queries.query_ts)
    n_hist = len(events.hist_user)
    user = np.concatenate([events.hist_user, events.click_user]).astype(np.int64)
    art = np.concatenate([events.hist_article, events.click_article]).astype(np.int64)
    ts = np.concatenate([events.hist_ts, events.click_ts]).astype(np.float64)
    rank = np.concatenate([np.zeros(n_hist, np.int64), ranks(events.click_ts)])
    # history order (oldest first) breaks the tie of their shared rank 0
    tie = np.concatenate([np.arange(n_hist), np.zeros(len(events.click_user), np.int64)])
    at = _newest_before(user, rank, tie, queries, recent_clicks, ranks)
    valid = at >= 0
    return (np.where(valid, art[np.maximum(at, 0)] if len(art) else -1, -1),
            np.where(valid, ts[np.maximum(at, 0)] if len(ts) else np.nan, np.nan))


def user_exposure_lists(events: EventArrays, queries: QueryRows, recent_exposures: int,
                        ranks: _TimeRanks | None = None) -> np.ndarray:
    """exposure_idx (Q, M): each query user's newest shown articles strictly before its time,
    newest first (within one slate, the last position first: the order in which a store
    records a slate), -1 padded; what the store's per-reader exposure list holds then."""
    if events.exp_user is None:
        raise ValueError("the event log has no exposure users (EventArrays.exp_user)")
    ranks = ranks or _TimeRanks(events.exp_ts, queries.query_ts)
    n = len(events.exp_user)
    # log order breaks ties: the rows of one slate keep their position order
    at = _newest_before(events.exp_user.astype(np.int64), ranks(events.exp_ts), np.arange(n),
                        queries, recent_exposures, ranks)
    art = events.exp_article.astype(np.int64)
    return np.where(at >= 0, art[np.maximum(at, 0)] if n else -1, -1)


def _within_bucket(e_art: np.ndarray, e_rank: np.ndarray, e_w: np.ndarray,
                   q_art: np.ndarray, q_rank: np.ndarray, n_ranks: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per query: sum of e_w and count over events of the same article with rank < q_rank."""
    if len(e_art) == 0 or len(q_art) == 0:
        return np.zeros(len(q_art)), np.zeros(len(q_art))
    order = np.lexsort((e_rank, e_art))
    key = e_art[order].astype(np.int64) * n_ranks + e_rank[order].astype(np.int64)
    cs = np.concatenate([[0.0], np.cumsum(e_w[order])])
    hi = np.searchsorted(key, q_art * n_ranks + q_rank, side="left")
    lo = np.searchsorted(key, q_art * n_ranks, side="left")
    return cs[hi] - cs[lo], (hi - lo).astype(np.float64)


def article_stats(events: EventArrays, queries: QueryRows, n_articles: int, *,
                  half_life_hours: float, bucket_seconds: float = 3600.0,
                  ranks: _TimeRanks | None = None) -> np.ndarray:
    """STAT_COLUMNS (R, 4) of each row's article at its query time, from events before it."""
    ranks = ranks or _TimeRanks(events.click_ts, events.exp_ts, events.hist_ts,
                                queries.query_ts)
    lam = LN2 / (half_life_hours * 3600.0)
    row_ts = queries.query_ts[queries.row_query]
    # statistics are keyed like the store's (by id), so articles outside the catalog count
    # too -- when the log carries keys; otherwise only catalog articles have statistics
    keyed = (queries.row_key is not None and events.click_key is not None
             and events.exp_key is not None and events.hist_key is not None)
    if keyed:
        row_art = np.asarray(queries.row_key, dtype=np.int64)
        hist_a, click_a, exp_a = events.hist_key, events.click_key, events.exp_key
        n_articles = max(n_articles, events.n_keys)
    else:
        row_art = queries.row_article.astype(np.int64)
        hist_a, click_a, exp_a = events.hist_article, events.click_article, events.exp_article
    unknown_row = row_art < 0  # no key: zero statistics (never another article's)
    row_art = np.where(unknown_row, 0, row_art)
    row_rank = ranks(row_ts)
    out = np.zeros((len(row_art), 4), dtype=np.float64)

    kinds = []  # (article, ts, rank) of clicks then exposures; drop unknown articles
    # history clicks count as clicks at their `as_of` time: a store seeded with them does too
    clicks = (np.concatenate([hist_a, click_a]), np.concatenate([events.hist_ts, events.click_ts]))
    # the exposures are one row per shown item (the bulk of the log): no copy of them when
    # every article is known, and their passes run in chunks
    for art, ts in (clicks, (exp_a, events.exp_ts)):
        keep = art >= 0
        if not keep.all():
            art, ts = art[keep], ts[keep]
        del keep
        # event ranks are stored compactly (widened where combined in `_within_bucket`)
        compact = np.int32 if ranks.size < 2**31 else np.int64
        kinds.append((art, np.asarray(ts, dtype=np.float64), ranks(ts, compact)))
    if sum(len(k[1]) for k in kinds) + len(row_ts) == 0:
        return out
    t0 = float(np.floor(min(float(a.min()) for a in (kinds[0][1], kinds[1][1], row_ts)
                            if len(a))))

    t_max = max(float(a.max()) for a in (kinds[0][1], kinds[1][1], row_ts) if len(a))
    b_type = np.int32 if (t_max - t0) / bucket_seconds < 2**31 - 2 else np.int64

    def bucket_of(ts: np.ndarray) -> np.ndarray:
        b = np.empty(len(ts), b_type)
        for lo in range(0, len(ts), _CHUNK):
            b[lo:lo + _CHUNK] = np.floor((ts[lo:lo + _CHUNK] - t0) / bucket_seconds)
        return b

    row_bucket = bucket_of(row_ts)
    sorted_ev = []
    for art, ts, rk in kinds:
        b = bucket_of(ts)
        # a time-ordered log is already bucket-ordered: the stable sort would be the identity
        if len(b) and not bool(np.all(b[1:] >= b[:-1])):
            o = np.argsort(b, kind="stable")
            art, ts, rk, b = art[o], ts[o], rk[o], b[o]
        sorted_ev.append((art, ts, rk, b))
    del kinds
    row_order = np.argsort(row_bucket, kind="stable")
    sorted_rb = row_bucket[row_order]

    decayed = np.zeros((2, n_articles))  # decayed clicks, impressions at time `cur`
    counts = np.zeros((2, n_articles))
    cur = t0
    buckets = np.unique(np.concatenate(  # chunked: no (N,) copy of the bucket arrays
        [np.unique(b[lo:lo + _CHUNK]) for b in (sorted_rb, *(e[3] for e in sorted_ev))
         for lo in range(0, len(b), _CHUNK)] or [np.zeros(0, b_type)]))
    for k in buckets:
        start = t0 + k * bucket_seconds
        decayed *= np.exp(-lam * (start - cur))
        cur = start
        slices = []
        for art, ts, rk, b in sorted_ev:
            lo, hi = np.searchsorted(b, [k, k + 1])
            slices.append((art[lo:hi], ts[lo:hi], rk[lo:hi]))
        rlo, rhi = np.searchsorted(sorted_rb, [k, k + 1])
        if rhi > rlo:
            rows = row_order[rlo:rhi]
            ra, rt = row_art[rows], row_ts[rows]
            back = np.exp(-lam * (rt - cur))
            for j, (art, ts, rk) in enumerate(slices):
                w = np.exp(lam * (ts - cur))  # contribution at `cur`; >= 1 within a bucket
                extra_w, extra_n = _within_bucket(art, rk, w, ra, row_rank[rows], ranks.size)
                out[rows, j] = (decayed[j, ra] + extra_w) * back
                out[rows, 2 + j] = counts[j, ra] + extra_n
        for j, (art, ts, _rk) in enumerate(slices):
            np.add.at(decayed[j], art, np.exp(lam * (ts - cur)))
            np.add.at(counts[j], art, 1.0)
    out[unknown_row] = 0.0
    return out


def replay_inputs(events: EventArrays, queries: QueryRows, n_articles: int, *,
                  half_life_hours: float, recent_clicks: int,
                  bucket_seconds: float = 3600.0, recent_exposures: int = 0) -> RankingInputs:
    """RankingInputs of every query row, point-in-time correct (see the module docstring);
    `recent_exposures` > 0 adds each user's exposure list (needs `events.exp_user`)."""
    ranks = _TimeRanks(events.click_ts, events.exp_ts, events.hist_ts, queries.query_ts)
    click_idx, click_ts = user_click_lists(events, queries, recent_clicks, ranks)
    stats = article_stats(events, queries, n_articles, half_life_hours=half_life_hours,
                          bucket_seconds=bucket_seconds, ranks=ranks)
    return RankingInputs(
        click_idx=click_idx,
        click_ts=click_ts,
        user_ids=[events.user_ids[u] for u in queries.query_user],
        row_query=queries.row_query.astype(np.int64),
        row_article=queries.row_article.astype(np.int64),
        now=queries.query_ts[queries.row_query].astype(np.float64),
        position=queries.row_position.astype(np.float64),
        stats=stats,
        exposure_idx=(user_exposure_lists(events, queries, recent_exposures, ranks)
                      if recent_exposures > 0 else None),
    )
