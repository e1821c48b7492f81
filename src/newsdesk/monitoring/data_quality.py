"""Data quality of what the service ingests and serves from.

- event lag: service clock minus the newest event time seen (per event type), refreshed on
  the monitor's timer; a stalled feed shows as a growing lag;
- events per minute by type: `newsdesk_events_total` (serving metrics) gives it in PromQL
  (`rate(...[5m]) * 60`); the JSON counts the last 60 s here, in per-second buckets;
- rejected events by reason: `newsdesk_events_rejected_total{reason}` (invalid fields by
  pydantic error type, batch too large, not applied because the store was down);
- catalog freshness: age of the newest live article, share of live articles the active model
  has no embedding for (not recommendable by content);
- unknown-article clicks: clicks on ids absent from the serving catalog.

Gauges are per process; `max by` / `min by` aggregate them across workers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

WINDOW_S = 60


class DataQualityMonitor:
    """Event and catalog health (see the module docstring); thread-safe."""

    def __init__(self, registry: CollectorRegistry, *,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.lag = Gauge("newsdesk_event_lag_seconds", "Service clock minus the newest event "
                         "time seen, by event type.", ["type"], registry=registry)
        self.rejected = Counter("newsdesk_events_rejected_total", "Events refused by POST "
                                "/v1/events, by reason.", ["reason"], registry=registry)
        self.unknown_clicks = Counter("newsdesk_unknown_article_clicks_total", "Clicks on "
                                      "articles absent from the serving catalog.",
                                      registry=registry)
        self.newest_age = Gauge("newsdesk_catalog_newest_article_age_seconds", "Age of the "
                                "newest live article (service clock).", registry=registry)
        self.no_embedding = Gauge("newsdesk_catalog_live_without_embedding_ratio", "Share of "
                                  "live articles the active model has no embedding for.",
                                  registry=registry)
        self.wall = wall
        self._newest: dict[str, float] = {}  # type -> newest event time (Unix s)
        self._per_second: dict[int, dict[str, int]] = {}
        self._rejected: dict[str, int] = {}
        self._unknown = 0
        self._catalog: dict[str, Any] = {}
        self._lags: dict[str, float] = {}
        self._lock = threading.Lock()

    def record_events(self, events: Iterable[tuple[str, float, str | None]],
                      known: Callable[[str], bool]) -> None:
        """Accepted events as (type, event time in Unix s, article id or None)."""
        second = int(self.wall())
        unknown = 0
        with self._lock:
            bucket = self._per_second.setdefault(second, {})
            for kind, ts, article_id in events:
                bucket[kind] = bucket.get(kind, 0) + 1
                if ts > self._newest.get(kind, -math.inf):
                    self._newest[kind] = ts
                if kind == "click" and article_id is not None and not known(article_id):
                    unknown += 1
            self._unknown += unknown
            if len(self._per_second) > 4 * WINDOW_S:
                self._trim(second)
        if unknown:
            self.unknown_clicks.inc(unknown)

    def record_rejected(self, reason: str, n: int = 1) -> None:
        self.rejected.labels(reason).inc(n)
        with self._lock:
            self._rejected[reason] = self._rejected.get(reason, 0) + n

    def _trim(self, second: int) -> None:
        for s in [s for s in self._per_second if s <= second - WINDOW_S]:
            del self._per_second[s]

    def refresh(self, now: float, catalog: Any, model_index: dict[str, int] | None) -> None:
        """Timer: lags at service time `now`, catalog freshness (newest live article age,
        live articles missing from the model's `model_index` of embedded ids)."""
        with self._lock:
            lags = {kind: max(0.0, now - ts) for kind, ts in self._newest.items()}
            self._lags = lags
        for kind, lag in lags.items():
            self.lag.labels(kind).set(lag)
        if catalog is None:
            return
        newest = next(iter(catalog.latest(now)), None)
        info: dict[str, Any] = {"newest_article_age_s": None, "live_articles": 0,
                                "live_without_embedding": None}
        if newest is not None:
            info["newest_article_age_s"] = round(max(0.0, now - newest.published_ts), 3)
            self.newest_age.set(info["newest_article_age_s"])
        live = [e.article_id for e in catalog.latest(now)]
        info["live_articles"] = len(live)
        if model_index is not None and live:
            missing = sum(1 for a in live if a not in model_index)
            info["live_without_embedding"] = round(missing / len(live), 6)
            self.no_embedding.set(info["live_without_embedding"])
        with self._lock:
            self._catalog = info

    def snapshot(self) -> dict[str, Any]:
        second = int(self.wall())
        with self._lock:
            self._trim(second)
            per_minute: dict[str, int] = {}
            for bucket in self._per_second.values():
                for kind, n in bucket.items():
                    per_minute[kind] = per_minute.get(kind, 0) + n
            return {
                "event_lag_s": {k: round(v, 3) for k, v in self._lags.items()},
                "events_last_minute": per_minute,
                "rejected_events": dict(self._rejected),
                "unknown_article_clicks": self._unknown,
                "catalog": dict(self._catalog) or None,
            }
