"""The feedback loop: events in, durably logged, then applied to the online state.

`EventIngestor.ingest` (POST /v1/events) appends a batch to the event log and returns only once
it is durable; then it applies the new events to the online store (clicks update user state and
article stats, impressions count exposures) so the very next request reflects them.
Events the log reports as duplicates are not applied twice: a bounded memory of recently
applied keys (the last 10 minutes) resolves batches that mix new and repeated events.

With a shared Redis Stream log and a Redis online store, an `applier`
(`serving.event_consumer.StreamApplier`) is given: the ingestor then only appends, and waits
(bounded) until the replicas' consumer group has applied the batch; nothing is applied inline
(see that module for why).

`ExposureLogger` logs every served slate as an impression (the exposure log) off the request
path: a bounded queue drained by one background task in batches; when the queue is full the
slate is dropped from the log and counted (the API never waits on the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from newsdesk.data.eventlog import AppendResult, Event, EventLog, coerce_batch
from newsdesk.data.eventlog.base import event_key
from newsdesk.data.recent_keys import RecentKeys
from newsdesk.errors import StoreUnavailable
from newsdesk.features.online_store import OnlineStore
from newsdesk.monitoring.logging import get_logger
from newsdesk.monitoring.metrics import ServingMetrics
from newsdesk.serving.resilience import CircuitOpen

if TYPE_CHECKING:
    from newsdesk.serving.event_consumer import StreamApplier

log = get_logger("newsdesk.serving.feedback")
RECENT_S = 600.0  # how long applied event keys and served request ids are remembered


def _ts(value: datetime | None, now: float) -> float:
    return now if value is None else value.timestamp()


class EventIngestor:
    """Durable append, then apply to the online store (see module docstring)."""

    def __init__(self, event_log: EventLog, store: OnlineStore | None, metrics: ServingMetrics,
                 executor: Executor, *, clock: Callable[[], float] = time.time,
                 applier: StreamApplier | None = None, apply_wait_s: float = 1.0) -> None:
        self.clock = clock
        self.applier = applier
        self.apply_wait_s = apply_wait_s
        self.event_log = event_log
        self.store = store
        self.metrics = metrics
        self.executor = executor
        # a retried batch and a click come minutes after their originals: memory for 10 min
        # (bounded at any traffic; see data/recent_keys.py)
        self.applied = RecentKeys(max_age_s=RECENT_S)
        self.served = RecentKeys(100_000, max_age_s=RECENT_S)  # request_id -> (surface, variant)
        # logged events the store refused without trying (circuit open): certainly not
        # applied, so safe to apply later (the OnlineStateKeeper does, once the store is up)
        self.not_applied: Callable[[list[Event]], None] | None = None

    async def ingest(self, events: Sequence[Any]) -> tuple[AppendResult, bool]:
        """Log a validated batch (API event models) durably, then apply it; (result, applied)."""
        now = self.clock()
        canonical = coerce_batch(self._record(e, now) for e in events)
        loop = asyncio.get_running_loop()
        if self.applier is not None:
            return await self._ingest_shared(events, canonical)
        result = await loop.run_in_executor(self.executor, self.event_log.append, canonical)
        for e in events:
            self.metrics.events.labels(e.type, "logged").inc()
        if result.accepted == 0:
            return result, True
        # all new: apply all; some repeated: apply those not applied recently
        fresh = [(e, c) for e, c in zip(events, canonical, strict=True)
                 if result.duplicates == 0 or event_key(c) not in self.applied]
        try:
            await loop.run_in_executor(self.executor, self._apply, fresh)
        except StoreUnavailable as exc:
            log.warning("events_not_applied", error=str(exc), events=len(fresh))
            self.metrics.events.labels("batch", "not_applied").inc()
            self.defer([c for _, c in fresh], exc)
            return result, False
        return result, True

    async def _ingest_shared(self, events: Sequence[Any], canonical: list[Event]
                             ) -> tuple[AppendResult, bool]:
        """Append to the shared log; the consumer group applies it (module docstring)."""
        assert self.applier is not None
        loop = asyncio.get_running_loop()
        result, seqs = await loop.run_in_executor(self.executor, self.applier.append, canonical)
        for e in events:
            self.metrics.events.labels(e.type, "logged").inc()
        self._count_served_clicks([e for e, seq in zip(events, seqs, strict=True) if seq])
        try:
            applied = await self.applier.wait_applied(seqs, self.executor,
                                                      timeout_s=self.apply_wait_s)
        except StoreUnavailable as exc:
            log.warning("events_apply_unknown", error=str(exc), events=len(seqs))
            applied = False
        if not applied:
            self.metrics.events.labels("batch", "not_applied").inc()
        return result, applied

    def defer(self, events: list[Event], exc: Exception) -> None:
        """Hand events the store did not apply to `not_applied` when that is certain (an
        open circuit never called the store; a timeout may have applied them)."""
        if self.not_applied is not None and isinstance(exc, CircuitOpen):
            self.not_applied(events)

    def _count_served_clicks(self, events: Sequence[Any]) -> None:
        for event in events:
            if event.type == "click" and event.request_id:
                served = self.served.get(event.request_id)
                if served is not None:
                    self.metrics.record_click(*served)

    @staticmethod
    def _record(event: Any, now: float) -> dict[str, Any]:
        data = event.model_dump(exclude_none=True)
        kind = data.pop("type")
        data["timestamp"] = datetime.fromtimestamp(_ts(event.timestamp, now), tz=UTC)
        if kind == "impression":
            data["kind"] = "impression"
        else:
            data["kind"] = "interaction"
            data["type"] = kind
        return data

    def _apply(self, fresh: list[tuple[Any, Event]]) -> None:
        self._count_served_clicks([event for event, _ in fresh])
        if self.store is not None:
            self.store.record_events([c for _, c in fresh])
        for _, c in fresh:
            self.applied.add(event_key(c))


class ExposureLogger:
    """Logs served slates as impressions through a bounded queue (see module docstring)."""

    def __init__(self, ingestor: EventIngestor, metrics: ServingMetrics, *, maxsize: int,
                 batch: int = 500) -> None:
        self.ingestor = ingestor
        self.metrics = metrics
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize)
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="exposure-logger")

    def offer(self, request_id: str, user_id: str, surface: str, article_ids: list[str],
              variant: str | None, experiment: str | None, ts: float,
              propensities: list[float] | None = None, **extra: Any) -> None:
        """Queue one served slate; positions are the order of `article_ids`, `propensities[i]`
        the probability the serving policy put article i there (1.0: deterministic ranker).
        `extra`: further impression fields (`teams`, `assignment_propensity`)."""
        self.ingestor.served.add(request_id, (surface, variant))
        record = {"kind": "impression", "request_id": request_id, "user_id": user_id,
                  "timestamp": datetime.fromtimestamp(ts, tz=UTC), "surface": surface,
                  "article_ids": article_ids, "propensities": propensities,
                  "variant": variant, "experiment": experiment, **extra}
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.metrics.exposure.labels("dropped").inc()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            batch = [first]
            while len(batch) < self.batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self.metrics.queue_depth.labels("exposure").set(self.queue.qsize())
            try:
                await loop.run_in_executor(self.ingestor.executor, self._write, batch)
            except Exception as exc:  # keep draining: one failed batch must not stop the log
                self.metrics.exposure.labels("failed").inc(len(batch))
                log.warning("exposure_log_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                for _ in batch:
                    self.queue.task_done()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        events = coerce_batch(batch)
        result = self.ingestor.event_log.append(events)
        self.metrics.exposure.labels("logged").inc(result.accepted)
        self.metrics.exposure.labels("duplicate").inc(result.duplicates)
        store = self.ingestor.store
        # with a shared stream log the consumer group applies the slates (applied once)
        if store is not None and result.accepted and self.ingestor.applier is None:
            try:
                store.record_events(events)
            except StoreUnavailable as exc:  # logged all the same: apply later if certain
                self.ingestor.defer(events, exc)
                raise
            for event in events:
                self.ingestor.applied.add(event_key(event))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued (bounded wait), then stop the background task."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.queue.join(), timeout_s)
        except TimeoutError:
            log.warning("exposure_log_not_flushed", pending=self.queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
