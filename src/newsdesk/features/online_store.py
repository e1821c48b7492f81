"""The online store: real-time user and article state that serving reads on every request.

Contract (implementations: `MemoryOnlineStore` — in-process, optionally persisted to SQLite — and
`RedisOnlineStore` for several replicas; the same contract tests run against each):

* events go in as they arrive (`record_impressions`, `record_clicks`); a later read on the same
  store reflects them (read-your-writes);
* article statistics carry raw counts and exponentially time-decayed counts with half-life
  `half_life_hours`, decayed to the time of the read (`now`), so trending and smoothed CTR need no
  batch job;
* user state is the most recent clicks (newest first), capped at `max_user_clicks`, and the
  most recent exposures (articles shown to the reader, clicked or not; newest first, a slate's
  last position first), capped at `max_user_exposures` (0: the backend keeps none), recorded
  from the impressions of `record_events` / `record_exposures`: the skips a click list lacks
  (the ranking feature `story_exposures`);
* every method may raise `StoreUnavailable` when the backend cannot be reached; callers (the
  serving fallback chain, the circuit breaker) handle it.
* `record_events` applies a batch of canonical events (the serving event path) in one round
  trip where the backend can; `trending` lists only articles with at least one click.
* bulk loading (the bootstrap from a dataset, `newsdesk.features.bootstrap`):
  `merge_article_counts` adds pre-aggregated counts (the same result as recording each event,
  in any order), `merge_user_clicks` merges clicks into users' lists by time (newest first,
  capped), whatever the store already holds; markers (`read_marker`, `write_marker`,
  `claim_marker`, `delete_marker`) are small named strings kept with the state (persisted
  with it), so that a load can say what it already did.
* online co-visitation (`features.covisitation`): recording a click also counts decayed
  co-clicks with the reader's previous clicks of the session, as the store's user list had
  them just before; `coclick_neighbours` reads them, `merge_coclicks` adds pre-computed pairs
  (bulk loads), bounded per article (top-k neighbours, idle rows expire).

Decay: a count c observed at time t is worth c * 2**(-(now - t) / (half_life_hours * 3600)) at
time `now` (`decay_factor`).

Times are Unix seconds (float, UTC).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from newsdesk.data.schema import Impression, Interaction, InteractionType

if TYPE_CHECKING:
    from newsdesk.features.covisitation import CoVisitParams


def decay_factor(elapsed_s: float, half_life_hours: float) -> float:
    """Weight after `elapsed_s` seconds: 2**(-elapsed_s / half_life); > 1 when elapsed < 0.

    The exponent is clamped to +-1000 half-lives so that absurd clocks cannot overflow a float.
    """
    exponent = -elapsed_s / (half_life_hours * 3600.0)
    return float(2.0 ** max(-1000.0, min(1000.0, exponent)))


@dataclass(frozen=True, slots=True)
class ArticleStats:
    """Counts for one article; `decayed_*` are decayed to the read time."""

    impressions: int = 0
    clicks: int = 0
    decayed_impressions: float = 0.0
    decayed_clicks: float = 0.0
    last_event_ts: float | None = None


@dataclass(frozen=True, slots=True)
class Click:
    article_id: str
    ts: float


@dataclass(frozen=True)
class ArticleCounts:
    """Pre-aggregated counts of many articles, arrays aligned with `ids` (bulk loads).

    A decayed count is (value, ref): the count decayed to time ref (value 0: no event).
    last_ts is NaN for an article without events."""

    ids: list[str]
    impressions: np.ndarray  # int64
    clicks: np.ndarray  # int64
    imp_value: np.ndarray
    imp_ref: np.ndarray
    clk_value: np.ndarray
    clk_ref: np.ndarray
    last_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def merge_decayed(v1: np.ndarray, r1: np.ndarray, v2: np.ndarray, r2: np.ndarray,
                  half_life_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """Sum of two decayed counts (value at ref), expressed at the later reference."""
    v1, r1, v2, r2 = (np.asarray(x, dtype=np.float64) for x in (v1, r1, v2, r2))
    r1 = np.where(v1 > 0, r1, r2)
    r2 = np.where(v2 > 0, r2, r1)
    ref = np.maximum(r1, r2)
    hl = half_life_hours * 3600.0
    value = (v1 * np.power(2.0, np.clip(-(ref - r1) / hl, -1000, 1000))
             + v2 * np.power(2.0, np.clip(-(ref - r2) / hl, -1000, 1000)))
    return value, ref


def merge_click_lists(old: Sequence[Click], new: Sequence[Click], cap: int) -> list[Click]:
    """Two newest-first click lists merged newest first (ties: `new` first), capped."""
    if not old:
        return list(new[:cap])
    if not new:
        return list(old[:cap])
    tagged = [(-c.ts, 0, i, c) for i, c in enumerate(new)]
    tagged += [(-c.ts, 1, i, c) for i, c in enumerate(old)]
    tagged.sort(key=lambda t: t[:3])
    return [t[3] for t in tagged[:cap]]


class OnlineStore(ABC):
    """Real-time state shared by the recommend pipeline and the event ingestion path."""

    half_life_hours: float
    max_user_clicks: int
    max_user_exposures: int = 0  # articles shown per reader kept; 0: none (the default here)
    covisit: CoVisitParams | None = None  # None: no online co-visitation

    @abstractmethod
    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        """Count one impression (an article shown once) for each id, at time ts."""

    @abstractmethod
    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        """Count clicks of one user at time ts and prepend them to the user's recent clicks."""

    @abstractmethod
    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        """The user's most recent clicks, newest first (empty for unknown users)."""

    def record_exposures(  # noqa: B027 - optional: a backend may keep no exposures
            self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        """Prepend one slate shown to the reader at ts (ids in position order) to the
        reader's recent exposures. Default: a backend that keeps none (max_user_exposures
        0)."""

    def user_exposures(self, user_id: str, limit: int | None = None) -> list[Click]:
        """The reader's most recent exposures (article, time shown), newest first."""
        return []

    def merge_user_exposures(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        """`merge_user_clicks` for the exposure lists (bulk loads)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no exposures")

    def user_reads(self, user_id: str, limit: int | None, markers: Sequence[str]
                   ) -> tuple[list[Click], list[str | None]]:
        """`user_clicks(user_id, limit)` and `read_marker` of each name in `markers`: what a
        request reads about its reader, in one round trip where the backend has them."""
        return self.user_clicks(user_id, limit), [self.read_marker(m) for m in markers]

    def user_reads_with_exposures(self, user_id: str, limit: int | None,
                                  markers: Sequence[str], exposures: int
                                  ) -> tuple[list[Click], list[str | None], list[Click]]:
        """`user_reads` and the reader's `exposures` newest exposures, in one round trip
        where the backend can (a bundle with the story_exposures feature)."""
        clicks, values = self.user_reads(user_id, limit, markers)
        return clicks, values, self.user_exposures(user_id, exposures)

    @abstractmethod
    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        """Statistics for each id, in the same order; zeros for unknown ids."""

    def stats_matrix(self, article_ids: Sequence[str], now: float) -> np.ndarray:
        """`article_stats` as a float64 array (n, 4): decayed_clicks, decayed_impressions,
        clicks, impressions (the ranking features' STAT_COLUMNS). Backends override this to
        skip building one object per id on the request path."""
        stats = self.article_stats(article_ids, now)
        return np.array([[s.decayed_clicks, s.decayed_impressions, s.clicks, s.impressions]
                         for s in stats], dtype=np.float64).reshape(len(stats), 4)

    def article_rows(self, article_ids: Sequence[str]) -> np.ndarray | None:
        """Optional fast path: stable integer handles of ids for `stats_rows` (-1: unknown so
        far; a known id keeps its handle while `row_epoch` is unchanged), or None when the
        backend has no such handles (callers then use `stats_matrix`). Lets a caller resolve
        each article's id once instead of on every request."""
        return None

    def row_epoch(self) -> int:
        """Changes whenever handles from `article_rows` stop being valid (the state was
        cleared for a rebuild); a caller that keeps handles drops them when it changes."""
        return 0

    def stats_rows(self, rows: np.ndarray, now: float) -> np.ndarray:
        """`stats_matrix` by handles from `article_rows` (-1: zeros); shape (len(rows), 4)."""
        raise NotImplementedError(f"{type(self).__name__} has no article_rows handles")

    @abstractmethod
    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        """Top-n article ids by decayed clicks at `now` (optionally among `candidates`)."""

    def patient(self) -> OnlineStore:
        """This store for jobs off the request path (the start-up bootstrap, a rebuild after
        the store came back empty): the same state, with a backend's patient timeouts instead
        of the request path's fail-fast ones, so one slow reply on a loaded machine does not
        throw a whole rebuild away. Default: the store itself (no timeouts to relax)."""
        return self

    def record_events(self, events: Iterable[Impression | Interaction]) -> None:
        """Apply a batch of logged events: impressions count their shown articles, click
        interactions count a click, dismissals go to the reader's dismissal marker
        (features/dismissals.py). Backends override this to use one round trip."""
        from newsdesk.features.dismissals import apply_dismissals

        events = list(events)
        for event in events:
            if isinstance(event, Impression):
                self.record_impressions(event.article_ids, event.timestamp.timestamp())
                self.record_exposures(event.user_id, event.article_ids,
                                      event.timestamp.timestamp())
            elif event.type is InteractionType.CLICK:
                self.record_clicks(event.user_id, [event.article_id], event.timestamp.timestamp())
        apply_dismissals(self, events)

    # -- online co-visitation (features.covisitation) ---------------------------------------

    def coclick_neighbours(self, article_ids: Sequence[str], now: float, limit: int
                           ) -> list[list[tuple[str, float]]]:
        """Per id (same order): up to `limit` (neighbour id, co-clicks decayed to `now`),
        most first, ties by id bytewise descending. Default: a backend without online
        co-visitation, every list empty."""
        return [[] for _ in article_ids]

    def merge_coclicks(self, pairs: Sequence[tuple[str, str, float]]) -> None:
        """Add co-clicks (a, b, ts), each counted in both directions, in the given order
        (`covisitation.batch_pairs` computes them from a batch of clicks)."""
        raise NotImplementedError(f"{type(self).__name__} has no online co-visitation")

    # -- bulk loading and markers (see the contract above) --------------------------------

    @abstractmethod
    def merge_article_counts(self, counts: ArticleCounts) -> None:
        """Add pre-aggregated counts: raw counts add up, decayed counts merge, last_ts is
        the max, and the trending order includes the merged clicks."""

    @abstractmethod
    def merge_user_clicks(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        """Merge each user's clicks (given newest first) into the user's list by time;
        returns the number of users written."""

    @abstractmethod
    def read_marker(self, name: str) -> str | None:
        """The marker's value, None when unset."""

    @abstractmethod
    def write_marker(self, name: str, value: str) -> None:
        """Set a marker (overwrites)."""

    @abstractmethod
    def claim_marker(self, name: str, value: str) -> bool:
        """Set the marker only if it is unset (atomically, across processes sharing the
        store); True when this call set it."""

    @abstractmethod
    def delete_marker(self, name: str) -> None:
        """Unset a marker (no error when unset)."""

    def forget_user(self, user_id: str) -> bool:
        """Remove everything the store holds about one reader (their recent clicks, also in
        any persisted copy) at once: the right to erasure. Article statistics are aggregates
        and stay. True when there was something to remove."""
        raise NotImplementedError(f"{type(self).__name__} cannot erase a user")

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers; never raises."""

    def ready(self) -> bool:
        """Readiness (the service's /readyz): True when the backend answers within a patient
        timeout; never raises. A reply slower than the request path allows (a backend busy a
        moment on a loaded machine) is not an outage, and a readiness check that flipped on
        one would take the service out of rotation for nothing. Default: `ping`."""
        return self.ping()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and flush persistence."""


class DelegatedBulkLoads:
    """For wrappers of an OnlineStore held in `self.inner` (circuit breaker, caches): the bulk
    loads and markers run off the request path, so they go straight through."""

    inner: OnlineStore

    def patient(self) -> OnlineStore:
        """The wrapped store's patient view: jobs off the request path bypass the wrapper
        (the breaker, the per-worker stats cache) like the bulk loads below."""
        return self.inner.patient()

    def merge_article_counts(self, counts: ArticleCounts) -> None:
        self.inner.merge_article_counts(counts)

    def merge_user_clicks(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        return self.inner.merge_user_clicks(users)

    def merge_user_exposures(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        return self.inner.merge_user_exposures(users)

    def merge_coclicks(self, pairs: Sequence[tuple[str, str, float]]) -> None:
        self.inner.merge_coclicks(pairs)

    def read_marker(self, name: str) -> str | None:
        return self.inner.read_marker(name)

    def write_marker(self, name: str, value: str) -> None:
        self.inner.write_marker(name, value)

    def claim_marker(self, name: str, value: str) -> bool:
        return self.inner.claim_marker(name, value)

    def delete_marker(self, name: str) -> None:
        self.inner.delete_marker(name)

    def forget_user(self, user_id: str) -> bool:
        return self.inner.forget_user(user_id)
