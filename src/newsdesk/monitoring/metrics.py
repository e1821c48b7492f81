"""Prometheus metrics of one serving app instance.

Each `ServingMetrics` owns its own `CollectorRegistry`, so several apps in one process (tests,
the benchmark's baseline) never collide on the global registry. Names follow the Prometheus
conventions: `_total` counters, `_seconds` histograms, labels of low cardinality only (endpoint
templates, stage names, surfaces, variants — never user or article ids).

Online CTR per surface and variant is exported both as the two counters
(`newsdesk_slate_items_total`, `newsdesk_clicks_total`; the PromQL ratio of their rates is the
CTR over any window) and as a gauge of the cumulative ratio for dashboards without PromQL.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets tuned for a ~30 ms p99 target: fine below 50 ms, coarse above.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)
COUNT_BUCKETS = (0, 1, 5, 10, 20, 50, 100, 200, 500, 1000)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServingMetrics:
    """Every metric the serving app exports, registered on a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "newsdesk_http_requests_total", "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"], registry=r,
        )
        self.errors = Counter(
            "newsdesk_http_errors_total", "HTTP 5xx responses by endpoint.",
            ["endpoint"], registry=r,
        )
        self.latency = Histogram(
            "newsdesk_http_request_duration_seconds", "HTTP request latency by endpoint.",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.stage_latency = Histogram(
            "newsdesk_pipeline_stage_duration_seconds",
            "Latency of each recommend pipeline stage.",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.stage_failures = Counter(
            "newsdesk_pipeline_stage_failures_total",
            "Pipeline stages that failed, by stage and reason (timeout, error, circuit_open, "
            "shed).", ["stage", "reason"], registry=r,
        )
        self.fallbacks = Counter(
            "newsdesk_fallback_total", "Requests that took items from a fallback stage.",
            ["stage"], registry=r,
        )
        self.degraded = Counter(
            "newsdesk_degraded_responses_total",
            "Recommendation responses served degraded (primary model unavailable).",
            ["endpoint"], registry=r,
        )
        self.candidates = Histogram(
            "newsdesk_pipeline_candidates", "Items returned by each pipeline stage.",
            ["stage"], buckets=COUNT_BUCKETS, registry=r,
        )
        self.model_info = Info(
            "newsdesk_model", "The model bundle version serving traffic.", registry=r,
        )
        self.model_swaps = Counter(
            "newsdesk_model_swaps_total", "Hot swaps of the active model bundle.",
            ["action"], registry=r,
        )
        self.breaker_state = Gauge(
            "newsdesk_circuit_breaker_open", "1 while a circuit breaker is open.",
            ["name"], registry=r,
        )
        self.events = Counter(
            "newsdesk_events_total", "Events acknowledged through POST /v1/events.",
            ["type", "outcome"], registry=r,
        )
        self.exposure = Counter(
            "newsdesk_exposure_log_total",
            "Served slates sent to the exposure log, by outcome (logged, duplicate, dropped, "
            "failed).", ["outcome"], registry=r,
        )
        self.queue_depth = Gauge(
            "newsdesk_queue_depth", "Items waiting in a bounded internal queue.",
            ["queue"], registry=r,
        )
        self.slate_items = Counter(
            "newsdesk_slate_items_total", "Articles shown in served slates.",
            ["surface", "variant"], registry=r,
        )
        self.clicks = Counter(
            "newsdesk_clicks_total", "Clicks attributed to a served slate.",
            ["surface", "variant"], registry=r,
        )
        self.ctr = Gauge(
            "newsdesk_online_ctr", "Cumulative clicks / shown articles since start.",
            ["surface", "variant"], registry=r,
        )
        self.catalog_size = Gauge(
            "newsdesk_catalog_live_articles", "Live articles in the serving catalog.",
            registry=r,
        )
        self._shown: dict[tuple[str, str], float] = {}
        self._clicked: dict[tuple[str, str], float] = {}

    def set_model(self, version: str | None) -> None:
        self.model_info.info({"version": version or ""})

    def record_slate(self, surface: str, variant: str | None, n_items: int) -> None:
        key = (surface, variant or "production")
        self.slate_items.labels(*key).inc(n_items)
        self._shown[key] = self._shown.get(key, 0.0) + n_items
        self._update_ctr(key)

    def record_click(self, surface: str, variant: str | None) -> None:
        key = (surface, variant or "production")
        self.clicks.labels(*key).inc()
        self._clicked[key] = self._clicked.get(key, 0.0) + 1
        self._update_ctr(key)

    def _update_ctr(self, key: tuple[str, str]) -> None:
        shown = self._shown.get(key, 0.0)
        if shown > 0:
            self.ctr.labels(*key).set(self._clicked.get(key, 0.0) / shown)

    def render(self) -> bytes:
        """The text exposition format of every metric of this instance."""
        return generate_latest(self.registry)
