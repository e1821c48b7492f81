"""Fault injection with real components, the quick forms of `benchmarks/chaos.py`.

One real `newsdesk serve` per fault (the session's small trained bundle, its online store in
a redis-server this test runs, the SQLite event log), recommendation load and event batches
through the fault, /readyz polled. For each fault: every request answered (flagged degraded
where it fell back), no 5xx, no acknowledged event missing from the durable log, the fault
visible on /readyz and in /metrics, and everything whole again within 5 s of its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("newsdesk.models.bundle")
pytest.importorskip("lightgbm")

from benchmarks.chaos import Timeline, World, run_fault  # noqa: E402

from tests.serving.test_bundle_serving import Trained, trained  # noqa: E402, F401

pytestmark = [pytest.mark.ml, pytest.mark.slow, pytest.mark.redis]
TIMELINE = Timeline(warm=1.0, hold=2.0, after=5.5)
RATE = 20.0


def _world(t: Trained) -> World:
    return World(t.dataset, t.bundles, t.version, t.clock_start, t.users)


def _run(tmp_path: Path, t: Trained, fault: str) -> dict[str, Any]:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found (apt-get install redis-server)")
    r = run_fault(_world(t), tmp_path, fault, TIMELINE, RATE, slow_ms=10.0)
    # the promises that hold for every fault
    assert r["requests"] >= 100
    assert r["answered_share"] == 1.0, r["error_kinds"]
    assert r["server_errors"] == 0
    assert r["acked_events"] > 0 and r["acked_events_lost"] == 0
    assert r["duplicate_events"] == 0 and r["events_not_acked_in_the_end"] == 0
    assert r["recovery_s"] <= 5.0, r["recovery_last_wrong"]
    return r


@pytest.mark.timeout(180)
def test_redis_killed_and_back_empty_rebuilds_online_state(tmp_path: Path,
                                                            trained: Trained) -> None:  # noqa: F811
    r = _run(tmp_path, trained, "redis_killed")
    assert r["fault_on_readyz"] and r["fault_in_metrics"]
    assert r["degraded_share_fault"] > 0.5  # it fell back (and said so) while Redis was gone
    last = r["online_state"]["last"]
    assert r["online_state"]["rebuilds"] >= 1 and last["reason"] == "store_emptied"
    # the durable log was replayed into the new store (how much of the run's traffic came
    # before the empty store was noticed depends on timing: 400-700 of 820 here) and the
    # dataset loaded; no acknowledged event is missing from the log (_run checks it)
    assert last["replayed_events"] > 0 and last["dataset_users"] > 0


@pytest.mark.timeout(180)
def test_redis_paused(tmp_path: Path, trained: Trained) -> None:  # noqa: F811
    r = _run(tmp_path, trained, "redis_paused")
    assert r["fault_on_readyz"] and r["fault_in_metrics"]
    assert r["online_state"]["rebuilds"] == 0  # paused is not emptied
    # events logged while the circuit was open are applied once Redis answers again
    assert r["online_state"]["deferred_applied"] > 0
    assert r["online_state"]["deferred_pending"] == 0


@pytest.mark.timeout(180)
def test_redis_slow(tmp_path: Path, trained: Trained) -> None:  # noqa: F811
    r = _run(tmp_path, trained, "redis_slow")
    assert r["online_state"]["rebuilds"] == 0
    # slow, not down: /readyz says `slow` (still ready), the round-trip gauge says how slow
    assert r["fault_on_readyz"] and r["fault_in_metrics"]
    assert r["metrics_during_fault"]["up:online_store"] == 1.0


@pytest.mark.timeout(180)
def test_event_log_disk_full(tmp_path: Path, trained: Trained) -> None:  # noqa: F811
    r = _run(tmp_path, trained, "eventlog_disk_full")
    assert r["disk_full_mode"] == "rlimit_fsize"
    assert r["events_refused"] > 0  # the fault was real: batches were refused (503), resent
    assert r["fault_on_readyz"] and r["fault_in_metrics"]
    assert r["metrics_during_fault"]["up:event_log"] == 0.0


@pytest.mark.timeout(240)
def test_corrupt_bundle_is_refused_by_hot_swap_and_restart(tmp_path: Path,
                                                           trained: Trained) -> None:  # noqa: F811
    r = _run(tmp_path, trained, "bundle_corrupted")
    assert r["promote_status"] == 409 and "corrupt" in r["promote_error"]
    assert r["hot_swap_refused"] and r["model_versions_served"] == [trained.version]
    assert r["fault_on_readyz"] and r["metrics_during_fault"]["model_refused"] >= 1
    assert r["restart_refused_corrupt"]  # restarted with the corrupt one newest on disk
