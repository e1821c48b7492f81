"""The online store: real-time user and article state that serving reads on every request.

Contract (implementations: `MemoryOnlineStore` — in-process, optionally persisted to SQLite — and
`RedisOnlineStore` for several replicas; the same contract tests run against each):

* events go in as they arrive (`record_impressions`, `record_clicks`); a later read on the same
  store reflects them (read-your-writes);
* article statistics carry raw counts and exponentially time-decayed counts with half-life
  `half_life_hours`, decayed to the time of the read (`now`), so trending and smoothed CTR need no
  batch job;
* user state is the most recent clicks (newest first), capped at `max_user_clicks`;
* every method may raise `StoreUnavailable` when the backend cannot be reached; callers (the
  serving fallback chain, the circuit breaker) handle it.

Times are Unix seconds (float, UTC).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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


class OnlineStore(ABC):
    """Real-time state shared by the recommend pipeline and the event ingestion path."""

    half_life_hours: float
    max_user_clicks: int

    @abstractmethod
    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        """Count one impression (an article shown once) for each id, at time ts."""

    @abstractmethod
    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        """Count clicks of one user at time ts and prepend them to the user's recent clicks."""

    @abstractmethod
    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        """The user's most recent clicks, newest first (empty for unknown users)."""

    @abstractmethod
    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        """Statistics for each id, in the same order; zeros for unknown ids."""

    @abstractmethod
    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        """Top-n article ids by decayed clicks at `now` (optionally among `candidates`)."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers; never raises."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and flush persistence."""
