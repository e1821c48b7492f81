"""A circuit breaker, an OnlineStore that goes through one, and the probe that closes it.

States: closed (calls pass; consecutive failures are counted) -> open after
`failure_threshold` failures (calls fail fast with `StoreUnavailable` for `reset_s` seconds)
-> half-open (one trial call passes; success closes, failure re-opens). Thread-safe: the model
calls the store from worker threads while the event loop calls it for events.

Recovery does not wait for requests: `BreakerProbe` pings the backend from a thread of its
own every `interval_s` while the circuit is not closed, and a passing ping closes it on
probation (`CircuitBreaker.probe`). Without it, the way back was a request's trial call once
`reset_s` had passed, and one failed trial (a slow reply on a loaded machine, a pooled
connection to the dead server) meant `reset_s` more: measured 10-15 s of open circuit after
Redis was back. The probe never makes a request wait: it runs off the request path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np

from newsdesk.data.schema import Impression, Interaction
from newsdesk.errors import StoreUnavailable
from newsdesk.features.online_store import (
    ArticleStats,
    Click,
    DelegatedBulkLoads,
    OnlineStore,
)
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.periodic import Periodic

log = get_logger("newsdesk.serving.resilience")

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitOpen(StoreUnavailable):
    """Raised without calling the backend while the breaker is open."""


class CircuitBreaker:
    """Counts consecutive failures of a backend and stops calling it while it is down."""

    def __init__(self, name: str, *, failure_threshold: int = 5, reset_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str, str], None] | None = None) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_s:
                return HALF_OPEN
            return self._state

    def _set(self, state: str) -> None:
        if state != self._state:
            log.warning("circuit_breaker_state", breaker=self.name, state=state,
                        previous=self._state, failures=self._failures)
            self._state = state
            if self._on_change is not None:
                self._on_change(self.name, state)

    def _admit(self) -> None:
        # fast path without the lock (a closed breaker is the normal state of every store
        # call; a racy read of one attribute can only send a call through the locked path)
        if self._state == CLOSED:
            return
        with self._lock:
            if self._state == CLOSED:
                return
            if self._state == OPEN and self._clock() - self._opened_at < self.reset_s:
                raise CircuitOpen(f"circuit '{self.name}' is open")
            # half-open: let exactly one trial call through
            if self._trial_in_flight:
                raise CircuitOpen(f"circuit '{self.name}' is half-open (trial in flight)")
            self._trial_in_flight = True
            self._set(HALF_OPEN)

    def _success(self) -> None:
        if self._state == CLOSED and not self._failures and not self._trial_in_flight:
            return  # nothing to reset: no lock on the hot path
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            self._set(CLOSED)

    def _failure(self) -> None:
        with self._lock:
            self._trial_in_flight = False
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._set(OPEN)

    def probe(self, check: Callable[[], object]) -> bool:
        """A health check of the backend made off the request path (`BreakerProbe`): while
        the circuit is not closed, a `check` that returns truthy closes it on probation --
        requests use the backend again at once, and the first failure re-opens the circuit
        (like a failed half-open trial) while the first success ends the probation. A check
        that fails or raises changes nothing. Never raises; True when closed afterwards."""
        with self._lock:
            if self._state == CLOSED:
                return True
        try:
            ok = bool(check())
        except Exception:  # a probe must never take the prober down
            ok = False
        if not ok:
            return False
        with self._lock:
            if self._state != CLOSED:
                # probation: one more failure is the threshold (a backend that answers a ping
                # but fails real calls -- a slow Redis -- is cut off again at its first error)
                self._failures = self.failure_threshold - 1
                self._trial_in_flight = False
                self._set(CLOSED)
        return True

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call fn through the breaker; backend errors count as failures and propagate."""
        self._admit()
        try:
            result = fn(*args, **kwargs)
        except StoreUnavailable:
            self._failure()
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            self._failure()
            raise StoreUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        self._success()
        return result


class BreakerProbe:
    """Pings a backend every `interval_s` while its breaker is not closed, on a daemon
    thread of its own (`Periodic`), and closes the breaker when the ping passes
    (`CircuitBreaker.probe`). Costs nothing while the circuit is closed (no ping).

    Args:
        breaker: the circuit to close.
        ping: the backend's health check (`OnlineStore.ping`: True when it answers, never
            raises; the same client and timeouts as the request path, so a pass means
            requests would pass too).
        interval_s: how often to look; the recovery time after the backend is back is
            about one interval.
        on_recovered: called after the probe closed the circuit (the state keeper's `wake`:
            a store back empty is rebuilt at once).
    """

    def __init__(self, breaker: CircuitBreaker, ping: Callable[[], bool], *,
                 interval_s: float = 0.25,
                 on_recovered: Callable[[], object] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.breaker = breaker
        self.ping = ping
        self.on_recovered = on_recovered
        self._outage = False  # the circuit was seen not closed since the last recovery
        self._job = Periodic(f"breaker-probe-{breaker.name}", interval_s, self.tick)

    def tick(self) -> bool:
        """One look: True when the circuit is closed afterwards. `on_recovered` runs once
        per outage, whoever closed the circuit (this probe, or a request's trial since the
        last look)."""
        if self.breaker.state != CLOSED:
            self._outage = True
            if not self.breaker.probe(self.ping):
                return False
        if self._outage:
            self._outage = False
            if self.on_recovered is not None:
                self.on_recovered()
        return True

    def start(self) -> BreakerProbe:
        self._job.start()
        return self

    def stop(self) -> None:
        self._job.stop()


class GuardedOnlineStore(DelegatedBulkLoads, OnlineStore):
    """Wraps an OnlineStore so every call goes through a circuit breaker.

    Given to the recommender too, so a dead Redis makes the model fail fast (CircuitOpen)
    instead of waiting for socket timeouts on every request.
    """

    def __init__(self, inner: OnlineStore, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.half_life_hours = inner.half_life_hours
        self.max_user_clicks = inner.max_user_clicks
        self.max_user_exposures = inner.max_user_exposures
        self.covisit = inner.covisit

    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        self.breaker.call(self.inner.record_impressions, article_ids, ts)

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self.breaker.call(self.inner.record_clicks, user_id, article_ids, ts)

    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        return self.breaker.call(self.inner.user_clicks, user_id, limit)

    def record_exposures(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self.breaker.call(self.inner.record_exposures, user_id, article_ids, ts)

    def user_exposures(self, user_id: str, limit: int | None = None) -> list[Click]:
        return self.breaker.call(self.inner.user_exposures, user_id, limit)

    def user_reads(self, user_id: str, limit: int | None, markers: Sequence[str]
                   ) -> tuple[list[Click], list[str | None]]:
        return self.breaker.call(self.inner.user_reads, user_id, limit, markers)

    def user_reads_with_exposures(self, user_id: str, limit: int | None,
                                  markers: Sequence[str], exposures: int
                                  ) -> tuple[list[Click], list[str | None], list[Click]]:
        return self.breaker.call(self.inner.user_reads_with_exposures, user_id, limit,
                                 markers, exposures)

    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        return self.breaker.call(self.inner.article_stats, article_ids, now)

    def stats_matrix(self, article_ids: Sequence[str], now: float) -> np.ndarray:
        return self.breaker.call(self.inner.stats_matrix, article_ids, now)

    def article_rows(self, article_ids: Sequence[str]) -> np.ndarray | None:
        return self.breaker.call(self.inner.article_rows, article_ids)

    def row_epoch(self) -> int:
        return self.inner.row_epoch()  # an attribute read: nothing for the breaker to guard

    def stats_rows(self, rows: np.ndarray, now: float) -> np.ndarray:
        # the backend's row handles must reach the model through the breaker too: without
        # them every request resolves a few hundred ids again (measured: ~8% of the server's
        # CPU at the full state)
        return self.breaker.call(self.inner.stats_rows, rows, now)

    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        return self.breaker.call(self.inner.trending, n, now, candidates=candidates)

    def record_events(self, events: Iterable[Impression | Interaction]) -> None:
        self.breaker.call(self.inner.record_events, list(events))

    def coclick_neighbours(self, article_ids: Sequence[str], now: float, limit: int
                           ) -> list[list[tuple[str, float]]]:
        return self.breaker.call(self.inner.coclick_neighbours, article_ids, now, limit)

    def ping(self) -> bool:
        return self.inner.ping()

    def ready(self) -> bool:
        return self.inner.ready()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> object:
        # Extra methods of a backend (bulk loaders, flush) stay reachable, unguarded.
        return getattr(self.inner, name)
