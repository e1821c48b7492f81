"""Online model quality per surface, variant and model version.

    served slate ──> record_slate: responses (degraded or not), shown per position,
                     topic diversity of the slate, articles shown (coverage)
    click event  ──> record_click: the slate it came from (request_id), its position

Exported (all counters / histograms aggregate across worker processes with `sum by`):
- `newsdesk_responses_total{surface,variant,model_version,degraded}`: share of degraded answers;
- `newsdesk_position_shown_total` / `newsdesk_position_clicks_total` `{...,position}`: CTR by
  position (1-based; positions past MAX_POSITION share the label "11+"), so CTR@k is
  `sum(clicks{position=~"[1-5]"}) / sum(shown{position=~"[1-5]"})`;
- `newsdesk_slate_topic_diversity{...}` (histogram): distinct topics / slate size, per slate;
- `newsdesk_catalog_coverage_ratio{...}` (gauge, refreshed on the monitor's timer): distinct
  live articles shown in the last `coverage_window_s` / live articles.

Clicks are attributed through a bounded memory of recent slates (request_id -> slate); a click
without request_id, on a slate forgotten, or repeated (same event_id) is not counted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MAX_POSITION = 10
CTR_AT = (1, 3, 5, 10)
DIVERSITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
Key = tuple[str, str, str]  # surface, variant, model_version


def position_label(position: int) -> str:
    """1-based position label of bounded cardinality."""
    return str(position) if position <= MAX_POSITION else f"{MAX_POSITION + 1}+"


class _Recent:
    """A bounded LRU map (serving's feedback has the same; monitoring sits below serving)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, value: Any = True) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data


@dataclass
class _Row:
    responses: int = 0
    degraded: int = 0
    shown: list[int] = field(default_factory=lambda: [0] * (MAX_POSITION + 1))
    clicks: list[int] = field(default_factory=lambda: [0] * (MAX_POSITION + 1))
    diversity_sum: float = 0.0
    last_shown: dict[str, float] = field(default_factory=dict)  # article id -> wall time
    coverage: float | None = None


class QualityMonitor:
    """Counts slates and clicks (see the module docstring); thread-safe."""

    def __init__(self, registry: CollectorRegistry, *, coverage_window_s: float = 3600.0,
                 memory: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        labels = ["surface", "variant", "model_version"]
        self.responses = Counter(
            "newsdesk_responses_total", "Recommendation responses by surface, variant, model "
            "version and whether they were degraded.", [*labels, "degraded"], registry=registry)
        self.shown = Counter(
            "newsdesk_position_shown_total", "Articles shown, by 1-based slate position.",
            [*labels, "position"], registry=registry)
        self.clicked = Counter(
            "newsdesk_position_clicks_total", "Clicks on served articles, by 1-based slate "
            "position.", [*labels, "position"], registry=registry)
        self.diversity = Histogram(
            "newsdesk_slate_topic_diversity", "Distinct topics / articles of each slate.",
            labels, buckets=DIVERSITY_BUCKETS, registry=registry)
        self.coverage = Gauge(
            "newsdesk_catalog_coverage_ratio", "Distinct live articles shown in the coverage "
            "window / live articles.", labels, registry=registry)
        self.coverage_window_s = coverage_window_s
        self.clock = clock
        self._slates = _Recent(memory)  # request_id -> (key, {article_id: position})
        self._clicks_seen = _Recent(memory)
        self._rows: dict[Key, _Row] = {}
        self._lock = threading.Lock()

    def record_slate(self, request_id: str, surface: str, variant: str | None,
                     model_version: str | None, article_ids: Sequence[str],
                     categories: Sequence[str | None], degraded: bool) -> None:
        key = (surface, variant or "production", model_version or "none")
        self.responses.labels(*key, "true" if degraded else "false").inc()
        now = self.clock()
        with self._lock:
            row = self._rows.setdefault(key, _Row())
            row.responses += 1
            row.degraded += int(degraded)
            for p, aid in enumerate(article_ids):
                row.shown[min(p, MAX_POSITION)] += 1
                row.last_shown[aid] = now
            if article_ids:
                div = len({c for c in categories}) / len(article_ids)
                row.diversity_sum += div
        for p in range(len(article_ids)):
            self.shown.labels(*key, position_label(p + 1)).inc()
        if article_ids:
            self.diversity.labels(*key).observe(div)
            self._slates.add(request_id, (key, {a: p for p, a in enumerate(article_ids)}))

    def record_click(self, event_id: str, request_id: str | None, article_id: str) -> bool:
        """Count a click on a remembered slate once; True when it was attributed."""
        if request_id is None or event_id in self._clicks_seen:
            return False
        slate = self._slates.get(request_id)
        if slate is None:
            return False
        key, positions = slate
        p = positions.get(article_id)
        if p is None:
            return False
        self._clicks_seen.add(event_id)
        self.clicked.labels(*key, position_label(p + 1)).inc()
        with self._lock:
            self._rows[key].clicks[min(p, MAX_POSITION)] += 1
        return True

    def refresh(self, live_ids: Callable[[], Iterable[str]] | None) -> None:
        """Recompute the coverage gauges (timer): shown-and-live / live, per key."""
        now = self.clock()
        live = set(live_ids()) if live_ids is not None else set()
        with self._lock:
            for key, row in self._rows.items():
                horizon = now - self.coverage_window_s
                row.last_shown = {a: t for a, t in row.last_shown.items() if t >= horizon}
                if live:
                    row.coverage = sum(1 for a in row.last_shown if a in live) / len(live)
                    self.coverage.labels(*key).set(row.coverage)

    def rows(self) -> list[dict[str, object]]:
        """One JSON row per (surface, variant, model_version), cumulative since start."""
        out = []
        with self._lock:
            for (surface, variant, version), row in sorted(self._rows.items()):
                ctr = {}
                for k in CTR_AT:
                    shown = sum(row.shown[:k])
                    ctr[str(k)] = round(sum(row.clicks[:k]) / shown, 6) if shown else None
                out.append({
                    "surface": surface, "variant": variant, "model_version": version,
                    "responses": row.responses,
                    "degraded_share": round(row.degraded / row.responses, 6),
                    "shown": sum(row.shown), "clicks": sum(row.clicks), "ctr_at": ctr,
                    "ctr_by_position": [round(c / s, 6) if s else None
                                        for c, s in zip(row.clicks, row.shown, strict=True)],
                    "topic_diversity": round(row.diversity_sum / row.responses, 6),
                    "coverage": None if row.coverage is None else round(row.coverage, 6),
                })
        return out
