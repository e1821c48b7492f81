"""Online model quality per surface, variant and model version.

    served slate ──> record_slate: responses (degraded or not), shown per position,
                     topic diversity of the slate, articles shown (coverage)
    click event  ──> record_click: the slate it came from (request_id), its position

The request path only updates plain counts under one lock (a few microseconds: Prometheus
label lookups and increments cost ~2 us each, and a slate would need a dozen); the metrics are
built from those counts when /metrics is scraped (a custom collector).

Exported (all counters / summaries aggregate across worker processes with `sum by`):
- `newsdesk_responses_total{surface,variant,model_version,degraded}`: share of degraded answers;
- `newsdesk_position_shown_total` / `newsdesk_position_clicks_total` `{...,position}`: CTR by
  position (1-based; positions past MAX_POSITION share the label "11+"), so CTR@k is
  `sum(clicks{position=~"[1-5]"}) / sum(shown{position=~"[1-5]"})`;
- `newsdesk_slate_topic_diversity{...}` (summary: _sum, _count): distinct topics / slate
  size, per slate;
- `newsdesk_catalog_coverage_ratio{...}` (gauge, refreshed on the monitor's timer): distinct
  live articles shown in the last `coverage_window_s` / live articles.

Clicks are attributed through a bounded memory of recent slates (request_id -> slate); a click
without request_id, on a slate forgotten, or repeated (same event_id) is not counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from newsdesk.data.recent_keys import RecentKeys

MAX_POSITION = 10
CTR_AT = (1, 3, 5, 10)
LABELS = ["surface", "variant", "model_version"]
Key = tuple[str, str, str]  # surface, variant, model_version


def position_label(position: int) -> str:
    """1-based position label of bounded cardinality."""
    return str(position) if position <= MAX_POSITION else f"{MAX_POSITION + 1}+"


@dataclass
class _Row:
    responses: int = 0
    degraded: int = 0
    shown: list[int] = field(default_factory=lambda: [0] * (MAX_POSITION + 1))
    clicks: list[int] = field(default_factory=lambda: [0] * (MAX_POSITION + 1))
    diversity_sum: float = 0.0
    slates: int = 0  # non-empty slates (the diversity's count)
    last_shown: dict[str, float] = field(default_factory=dict)  # article id -> wall time
    coverage: float | None = None


class QualityMonitor:
    """Counts slates and clicks (see the module docstring); thread-safe."""

    def __init__(self, registry: CollectorRegistry, *, coverage_window_s: float = 3600.0,
                 memory: int = 100_000, memory_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.coverage_window_s = coverage_window_s
        self.clock = clock
        # clicks are credited to slates served in the last `memory_s` (10 min) only
        self._slates = RecentKeys(memory, max_age_s=memory_s)  # request_id -> (key, ids)
        self._clicks_seen = RecentKeys(memory, max_age_s=memory_s)
        self._rows: dict[Key, _Row] = {}
        self._lock = threading.Lock()
        registry.register(self)  # collect() below, at scrape time

    def record_slate(self, request_id: str, surface: str, variant: str | None,
                     model_version: str | None, article_ids: Sequence[str],
                     categories: Sequence[str | None], degraded: bool) -> None:
        key = (surface, variant or "production", model_version or "none")
        now = self.clock()
        n = len(article_ids)
        div = len(set(categories)) / n if n else 0.0
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = _Row()
            row.responses += 1
            row.degraded += degraded
            shown = row.shown
            for p in range(min(n, MAX_POSITION)):
                shown[p] += 1
            if n > MAX_POSITION:
                shown[MAX_POSITION] += n - MAX_POSITION
            last = row.last_shown
            for aid in article_ids:
                last[aid] = now
            if n:
                row.diversity_sum += div
                row.slates += 1
        if n:
            self._slates.add(request_id, (key, article_ids))

    def record_click(self, event_id: str, request_id: str | None, article_id: str) -> bool:
        """Count a click on a remembered slate once; True when it was attributed."""
        if request_id is None or event_id in self._clicks_seen:
            return False
        slate = self._slates.get(request_id)
        if slate is None:
            return False
        key, article_ids = slate
        if article_id not in article_ids:
            return False
        p = article_ids.index(article_id)
        self._clicks_seen.add(event_id)
        with self._lock:
            self._rows[key].clicks[min(p, MAX_POSITION)] += 1
        return True

    def refresh(self, live_ids: Callable[[], Iterable[str]] | None) -> None:
        """Recompute the coverage gauges (timer): shown-and-live / live, per key."""
        now = self.clock()
        live = set(live_ids()) if live_ids is not None else set()
        with self._lock:
            for row in self._rows.values():
                horizon = now - self.coverage_window_s
                row.last_shown = {a: t for a, t in row.last_shown.items() if t >= horizon}
                if live:
                    row.coverage = sum(1 for a in row.last_shown if a in live) / len(live)

    def describe(self) -> list[Any]:
        return []  # families are known only at collect time; nothing to check up front

    def collect(self) -> list[Any]:
        """The Prometheus families, built from the counts (module docstring)."""
        responses = CounterMetricFamily(
            "newsdesk_responses", "Recommendation responses by surface, variant, model "
            "version and whether they were degraded.", labels=[*LABELS, "degraded"])
        shown = CounterMetricFamily(
            "newsdesk_position_shown", "Articles shown, by 1-based slate position.",
            labels=[*LABELS, "position"])
        clicks = CounterMetricFamily(
            "newsdesk_position_clicks", "Clicks on served articles, by 1-based slate position.",
            labels=[*LABELS, "position"])
        diversity = SummaryMetricFamily(
            "newsdesk_slate_topic_diversity", "Distinct topics / articles of each slate.",
            labels=LABELS)
        coverage = GaugeMetricFamily(
            "newsdesk_catalog_coverage_ratio", "Distinct live articles shown in the coverage "
            "window / live articles.", labels=LABELS)
        with self._lock:
            for key, row in self._rows.items():
                responses.add_metric([*key, "false"], row.responses - row.degraded)
                responses.add_metric([*key, "true"], row.degraded)
                for p in range(MAX_POSITION + 1):
                    if row.shown[p]:
                        shown.add_metric([*key, position_label(p + 1)], row.shown[p])
                        clicks.add_metric([*key, position_label(p + 1)], row.clicks[p])
                diversity.add_metric(list(key), count_value=row.slates,
                                     sum_value=row.diversity_sum)
                if row.coverage is not None:
                    coverage.add_metric(list(key), row.coverage)
        return [responses, shown, clicks, diversity, coverage]

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
                    "topic_diversity": (round(row.diversity_sum / row.slates, 6)
                                        if row.slates else None),
                    "coverage": None if row.coverage is None else round(row.coverage, 6),
                })
        return out
