"""A JSON summary of one app's Prometheus registry, for the dashboard.

    summarize(registry) -> {"endpoints": [...], "stages": [...], "ctr": [...], "model": ...,
                            "swaps": {...}, "breakers": {...}, "queues": {...},
                            "catalog_size": n, "fallbacks": {...}, "degraded": {...}}

The dashboard could parse the text exposition in JavaScript, but quantiles from histogram
buckets are easier to get right once, here, with the same rule as PromQL's
`histogram_quantile` (linear interpolation inside the bucket that holds the rank). Figures are
cumulative since the process started: the page turns successive polls into rates itself.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

QUANTILES = (0.5, 0.95, 0.99)


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative `(upper_bound, count)` buckets sorted by bound (the last
    bound is +Inf), as PromQL's histogram_quantile: None without observations; the highest
    finite bound when the rank falls in the +Inf bucket."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def _histograms(registry: CollectorRegistry, name: str, label: str) -> list[dict[str, Any]]:
    """Per value of `label` (other labels summed): count, mean and QUANTILES, in seconds."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for family in registry.collect():
        if family.name != name:
            continue
        for s in family.samples:
            key = s.labels.get(label, "")
            if s.name.endswith("_bucket"):
                buckets[key][float(s.labels["le"])] += s.value
            elif s.name.endswith("_sum"):
                sums[key] += s.value
            elif s.name.endswith("_count"):
                counts[key] += s.value
    rows = []
    for key in sorted(buckets):
        ordered = sorted(buckets[key].items())
        n = counts[key]
        row: dict[str, Any] = {label: key, "count": n,
                               "mean_s": sums[key] / n if n else None}
        for q in QUANTILES:
            row[f"p{round(q * 100)}_s"] = bucket_quantile(q, ordered)
        rows.append(row)
    return rows


def _samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    out: list[tuple[dict[str, str], float]] = []
    for family in registry.collect():
        if family.name == name:
            out.extend((dict(s.labels), s.value) for s in family.samples
                       if not s.name.endswith("_created"))
    return out


def summarize(registry: CollectorRegistry) -> dict[str, Any]:
    """The dashboard's view of the serving metrics (see the module docstring)."""
    requests: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for labels, value in _samples(registry, "newsdesk_http_requests"):
        requests[labels["endpoint"]][labels["status"]] += value
    errors = {labels["endpoint"]: value
              for labels, value in _samples(registry, "newsdesk_http_errors")}
    latency = {row["endpoint"]: row for row in _histograms(
        registry, "newsdesk_http_request_duration_seconds", "endpoint")}
    endpoints = []
    for endpoint in sorted(requests):
        by_status = dict(requests[endpoint])
        lat = latency.get(endpoint, {})
        endpoints.append({"endpoint": endpoint, "requests": sum(by_status.values()),
                          "by_status": by_status, "errors_5xx": errors.get(endpoint, 0.0),
                          **{k: v for k, v in lat.items() if k != "endpoint"}})
    shown: dict[tuple[str, str], float] = {}
    clicks: dict[tuple[str, str], float] = {}
    for labels, value in _samples(registry, "newsdesk_slate_items"):
        shown[(labels["surface"], labels["variant"])] = value
    for labels, value in _samples(registry, "newsdesk_clicks"):
        clicks[(labels["surface"], labels["variant"])] = value
    ctr = [{"surface": s, "variant": v, "shown": n, "clicks": clicks.get((s, v), 0.0),
            "ctr": clicks.get((s, v), 0.0) / n if n else None}
           for (s, v), n in sorted(shown.items())]
    model = next((labels.get("version") or None
                  for labels, _ in _samples(registry, "newsdesk_model")), None)
    catalog = _samples(registry, "newsdesk_catalog_live_articles")
    return {
        "endpoints": endpoints,
        "stages": _histograms(registry, "newsdesk_pipeline_stage_duration_seconds", "stage"),
        "stage_failures": [{**labels, "count": value} for labels, value in
                           _samples(registry, "newsdesk_pipeline_stage_failures")],
        "fallbacks": {labels["stage"]: value
                      for labels, value in _samples(registry, "newsdesk_fallback")},
        "degraded": {labels["endpoint"]: value for labels, value in
                     _samples(registry, "newsdesk_degraded_responses")},
        "ctr": ctr,
        "model": model,
        "swaps": {labels["action"]: value
                  for labels, value in _samples(registry, "newsdesk_model_swaps")},
        "breakers": {labels["name"]: value >= 1.0 for labels, value in
                     _samples(registry, "newsdesk_circuit_breaker_open")},
        "queues": {labels["queue"]: value
                   for labels, value in _samples(registry, "newsdesk_queue_depth")},
        "catalog_size": catalog[0][1] if catalog else None,
    }
