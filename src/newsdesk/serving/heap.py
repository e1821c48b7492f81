"""The Python heap of a long-running server: garbage-collector pauses and freezing the state.

A full (generation 2) collection walks every container object the process holds. The embedded
online store at a million readers holds ~4.3 million of them, and one full collection then
takes ~1.3 s with the GIL held (measured in process, full serve_load state): every request in
flight stalls and the ones behind it are shed to the fallbacks. The state loaded at start (the
store's snapshot, the dataset's bootstrap, a rebuild from the event log, the model) lives as
long as the process, so it is moved out of the collector's reach with `gc.freeze()` once it
is loaded (`freeze_heap` once the service has started; `loading_state` at the end of each
later load): later collections walk only what was allocated since. Frozen objects are still
freed by reference counting when they are dropped; only a reference cycle among them would
stay (the loaded state has none worth counting).

`loading_state()` wraps the bulk loads that run while serving (the bootstrap from the dataset,
a rebuild from the event log): no collection runs during them, since each full one walks
everything loaded so far (at the full state they grew to 2.5 s each, back to back, through a
rebuild of 890k logged events), and at their end the loaded state is frozen before collection
resumes, so the first full collection after a load does not walk it either.

`GcPauses` exports every collection's pause as `newsdesk_gc_pause_seconds{generation}` and
logs a pause over 100 ms, so a stall of this kind shows on the dashboard and in the logs.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Gauge, Histogram

from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.serving.heap")
SLOW_PAUSE_S = 0.1
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GcPauses:
    """Times each garbage collection (a `gc.callbacks` hook) into a histogram."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pauses = Histogram("newsdesk_gc_pause_seconds",
                                "Garbage-collector pauses of the serving process.",
                                ["generation"], buckets=_BUCKETS, registry=registry)
        self.frozen = Gauge("newsdesk_gc_frozen_objects",
                            "Objects moved out of the collector's reach (gc.freeze).",
                            registry=registry)
        self.frozen.set_function(gc.get_freeze_count)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.pauses.labels(str(info.get("generation", -1))).observe(pause)
        if pause > SLOW_PAUSE_S:
            log.warning("gc_pause", generation=info.get("generation"), seconds=round(pause, 3),
                        collected=info.get("collected"))

    def start(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def stop(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def freeze_heap(reason: str) -> int:
    """Move every object the process holds now out of the collector's reach; returns how many
    are frozen in all. O(1): no collection runs (that would be the stall this avoids)."""
    gc.freeze()
    count = gc.get_freeze_count()
    log.info("heap_frozen", reason=reason, frozen_objects=count)
    return count


# `loading_state` is process-wide (so is the collector): nested or concurrent loads count
_loads = 0
_loads_lock = threading.Lock()
_was_enabled = True
freeze_after_loads = True  # serving/app.py sets it from the `gc_freeze` setting


@contextmanager
def loading_state() -> Iterator[None]:
    """No garbage collection while a bulk load of the state runs; at the end of the last
    concurrent load, freeze what it loaded (unless freezing is off) and resume collection."""
    global _loads, _was_enabled
    with _loads_lock:
        if _loads == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _loads += 1
    try:
        yield
    finally:
        with _loads_lock:
            _loads -= 1
            if _loads == 0:
                if freeze_after_loads:
                    freeze_heap("state loaded")
                if _was_enabled:
                    gc.enable()
