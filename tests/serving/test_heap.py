"""The serving process's heap: collector pauses are measured, the loaded state is frozen."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from newsdesk.serving.heap import GcPauses, freeze_heap


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for m in registry.collect() for s in m.samples if s.name == name}


def test_every_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry).start()
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.stop()
    counts = _samples(registry, "newsdesk_gc_pause_seconds_count")
    assert counts[(("generation", "2"),)] == 2
    assert counts[(("generation", "0"),)] >= 1
    assert pauses not in gc.callbacks


def test_freezing_moves_the_heap_out_of_the_collectors_reach() -> None:
    gc.unfreeze()
    keep = [[i] for i in range(10_000)]  # containers the collector tracks
    registry = CollectorRegistry()
    GcPauses(registry)
    frozen = freeze_heap("test")
    assert frozen > len(keep) and gc.get_freeze_count() > len(keep)
    # the gauge reads the collector itself (a frozen object freed meanwhile, say by a thread
    # an earlier test left behind, lowers the count: bracket the read)
    before = gc.get_freeze_count()
    gauge = _samples(registry, "newsdesk_gc_frozen_objects")[()]
    assert before >= gauge >= gc.get_freeze_count() > len(keep)
    assert not any(obj is keep for obj in gc.get_objects())  # no generation holds it now
    gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_no_collection_runs_during_a_load_and_its_state_is_frozen_after() -> None:
    from newsdesk.serving.heap import loading_state

    gc.unfreeze()
    assert gc.isenabled()
    with loading_state():
        assert not gc.isenabled()
        with loading_state():  # a rebuild while the bootstrap runs: one span
            pass
        assert not gc.isenabled()
        loaded = [[i] for i in range(5_000)]
        assert gc.get_freeze_count() == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() > len(loaded)  # what the load built is out of reach
    gc.unfreeze()
