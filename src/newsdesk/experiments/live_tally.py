"""Per-arm counts of running experiments, kept up to date from the event stream.

The service's own singleton jobs (the rollout autopilot, the bandit allocator) need, per
experiment and variant, how many slates were served, how many articles they showed and how many
of those were clicked. `ExposureTally.consume` reads that incrementally from the event log:
an impression row carries its (``;``-encoded) experiments and variants, and a click carries the
`request_id` of the slate it came from, so each click is credited to the arm that served it.

The exposure log is written off the request path, so a click can reach the log BEFORE the
impression of its slate: such clicks wait (bounded, `max_pending`) and are credited when the
slate arrives. Clicks whose slate was served before the tally started, or before a `reset`, are
not counted: every count refers to the same window of slates.

Each slate's serving outcome (`degraded`, `latency_ms`; rows logged before those fields existed
have neither) feeds the rollout guardrails: degraded slates are counted, latencies kept as a
uniform sample of at most `max_latency_samples` per arm (reservoir sampling, seeded), enough
for a p99 and bounded in memory however long a stage runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from newsdesk.data.eventlog.base import Event
from newsdesk.data.schema import Impression, Interaction
from newsdesk.experiments.exposure import SEP


@dataclass
class ArmCounts:
    requests: int = 0  # slates served
    impressions: int = 0  # articles shown
    clicks: int = 0  # clicks on those slates
    clicked_slates: int = 0  # slates with at least one click
    degraded: int = 0  # slates answered by the fallbacks (the personalised model failed)
    latencies_ms: list[float] = field(default_factory=list)  # sample of slate latencies
    timed: int = 0  # slates with a logged latency (the sample's population)


class ExposureTally:
    """Counts per (experiment, variant) over a window of the event log (module docstring)."""

    def __init__(self, experiments: Iterable[str] = (), max_pending: int = 100_000,
                 max_latency_samples: int = 20_000, seed: int = 0) -> None:
        self.watch = set(experiments)
        self.max_pending = max_pending
        self.max_latency_samples = max_latency_samples
        self._rng = random.Random(seed)
        self._pending: dict[str, int] = {}  # request_id -> clicks seen before its slate
        self.seq = 0  # last event-log seq consumed
        self.counts: dict[str, dict[str, ArmCounts]] = {}
        # request_id -> [(experiment, variant)] of slates in the window, for click credit
        self._slates: dict[str, list[tuple[str, str]]] = {}
        self._clicked: set[tuple[str, str, str]] = set()  # (request, experiment, variant)

    def arm(self, experiment: str, variant: str) -> ArmCounts:
        return self.counts.setdefault(experiment, {}).setdefault(variant, ArmCounts())

    def reset(self, experiment: str) -> None:
        """Start a new window for one experiment (a new rollout stage)."""
        self.counts.pop(experiment, None)
        for rid in [r for r, arms in self._slates.items() if any(e == experiment
                                                                  for e, _ in arms)]:
            arms = [a for a in self._slates[rid] if a[0] != experiment]
            if arms:
                self._slates[rid] = arms
            else:
                del self._slates[rid]
        self._clicked = {k for k in self._clicked if k[1] != experiment}

    def consume(self, events: Iterable[tuple[int, Event]]) -> int:
        """Apply logged events (seq, event) in order; returns how many were read."""
        n = 0
        for seq, event in events:
            n += 1
            self.seq = max(self.seq, seq)
            if isinstance(event, Impression):
                self._impression(event)
            elif (isinstance(event, Interaction) and event.request_id is not None
                  and event.type == "click"):
                self._click(event.request_id)
        return n

    def _impression(self, row: Impression) -> None:
        waiting = self._pending.pop(row.request_id, 0)
        if not row.experiment or not row.variant:
            return
        arms = [(e, v) for e, v in zip(row.experiment.split(SEP), row.variant.split(SEP),
                                       strict=False) if e in self.watch]
        if not arms:
            return
        self._slates[row.request_id] = arms
        for e, v in arms:
            c = self.arm(e, v)
            c.requests += 1
            c.impressions += len(row.article_ids)
            c.degraded += bool(row.degraded)
            if row.latency_ms is not None:
                self._sample(c, row.latency_ms)
        for _ in range(waiting):
            self._click(row.request_id)

    def _sample(self, c: ArmCounts, latency_ms: float) -> None:
        c.timed += 1
        if len(c.latencies_ms) < self.max_latency_samples:
            c.latencies_ms.append(latency_ms)
            return
        j = self._rng.randrange(c.timed)  # keep each of the `timed` values with equal chance
        if j < self.max_latency_samples:
            c.latencies_ms[j] = latency_ms

    def _click(self, request_id: str) -> None:
        arms = self._slates.get(request_id)
        if arms is None:  # its slate may still be in the exposure queue
            if len(self._pending) >= self.max_pending:
                self._pending.pop(next(iter(self._pending)))  # the oldest gives way
            self._pending[request_id] = self._pending.get(request_id, 0) + 1
            return
        for e, v in arms:
            c = self.arm(e, v)
            c.clicks += 1
            key = (request_id, e, v)
            if key not in self._clicked:
                self._clicked.add(key)
                c.clicked_slates += 1
