"""Prometheus metrics of the LLM layer, on the serving app's registry or a private one.

Per provider and task: calls by outcome, tokens by kind, latency, errors by kind, cache hits;
the estimated cost of the current UTC day from the per-token prices in settings; the breaker
state; the global switch; the enrichment queue (depth, and what it dropped, by reason).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LLM_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class LLMMetrics:
    """Every LLM metric, registered on `registry` (a private one when None)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter(
            "newsdesk_llm_calls_total", "LLM calls by provider, task and outcome (ok, cached, "
            "disabled, budget, error).", ["provider", "task", "outcome"], registry=r)
        self.tokens = Counter(
            "newsdesk_llm_tokens_total", "Tokens by provider, task and kind (prompt, "
            "completion).", ["provider", "task", "kind"], registry=r)
        self.latency = Histogram(
            "newsdesk_llm_call_duration_seconds", "Wall time of provider calls (attempts).",
            ["provider", "task"], buckets=LLM_LATENCY_BUCKETS, registry=r)
        self.errors = Counter(
            "newsdesk_llm_errors_total", "Failed provider attempts by provider, task and kind "
            "(timeout, unavailable, circuit_open, invalid_output, error).",
            ["provider", "task", "kind"], registry=r)
        self.retries = Counter(
            "newsdesk_llm_retries_total", "Attempts retried after a transient failure.",
            ["provider", "task"], registry=r)
        self.cost_today = Gauge(
            "newsdesk_llm_cost_estimate_today", "Estimated cost of today's (UTC) tokens, from "
            "the per-token prices in settings.", ["provider"], registry=r)
        self.requests_today = Gauge(
            "newsdesk_llm_requests_today", "Provider calls made today (UTC) by this process.",
            ["provider"], registry=r)
        self.breaker_open = Gauge(
            "newsdesk_llm_breaker_open", "1 while the provider's circuit breaker is open.",
            ["provider"], registry=r)
        self.enabled = Gauge(
            "newsdesk_llm_enabled", "1 while the global LLM switch is on.", registry=r)
        self.invalid_dropped = Counter(
            "newsdesk_llm_invalid_output_dropped_total", "Answers dropped because they did "
            "not fit the schema after the retries.", ["task"], registry=r)
        self.queue_depth = Gauge(
            "newsdesk_llm_enrich_queue_depth", "Articles waiting for enrichment.", registry=r)
        self.enrich_waiting = Gauge(
            "newsdesk_llm_enrich_waiting_for_serving", "1 while the enrichment worker waits "
            "for the request path to be less busy (llm.enrich_yield_above).", registry=r)
        self.queue_dropped = Counter(
            "newsdesk_llm_enrich_dropped_total", "Articles not enriched, by reason (queue_full, "
            "disabled, error, invalid_output).", ["reason"], registry=r)
        self.enriched = Counter(
            "newsdesk_llm_enriched_total", "Articles enriched and stored.", registry=r)
