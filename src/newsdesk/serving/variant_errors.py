"""Server errors (5xx) of experiment variants, for the rollout autopilot's error-rate guardrail.

A served slate carries its outcome in the exposure log (`degraded`, `latency_ms`), which every
process reads. A request that fails with a 5xx serves no slate, so it leaves no exposure row:
the recommendations route counts it here, per (experiment, variant), and the autopilot adds
these counts to the arm's errors AND requests of its window.

Limit: the count is process-local. With `--workers N` or several replicas the leader sees the
5xx of its own process only (about 1/N of them); degraded slates, the usual form of a broken
model (the pipeline catches a model's exception and falls back), are counted from the shared
log and are complete.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter

from newsdesk.experiments.exposure import SEP


class VariantErrors:
    """Thread-safe running counts of 5xx per (experiment, variant); never reset, the autopilot
    takes differences between its reads (`total`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._metric = Counter(
            "newsdesk_variant_server_errors_total",
            "Recommendation requests of an experiment variant that failed with a 5xx.",
            ["experiment", "variant"], registry=registry)

    def record(self, experiment: str, variant: str | None) -> None:
        """One failed request; `experiment` / `variant` as encoded in the exposure log
        (``;``-joined across layers)."""
        if not variant:
            return
        with self._lock:
            for e, v in zip(experiment.split(SEP), variant.split(SEP), strict=False):
                self._counts[(e, v)] = self._counts.get((e, v), 0) + 1
                self._metric.labels(e, v).inc()

    def total(self, experiment: str, variant: str) -> int:
        """5xx of one arm since the process started."""
        with self._lock:
            return self._counts.get((experiment, variant), 0)
