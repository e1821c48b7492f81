"""SIGKILL a real `newsdesk serve` mid-ingest: no acknowledged event lost, none twice.

The quick form of `benchmarks/crash_ingest.py` (3 kills instead of 20): the real command as a
child process, 4 concurrent clients posting batches of 200 click events with event ids, a
SIGKILL while batches are in flight, a restart, the unacknowledged batches sent again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsdesk.chaos.crash import run_crash_ingest

pytestmark = [pytest.mark.slow]


@pytest.mark.timeout(240)
def test_three_sigkills_lose_no_acknowledged_event_and_store_none_twice(tmp_path: Path) -> None:
    r = run_crash_ingest(tmp_path, kills=3, ingest_s=(0.3, 0.8), online_sample=200)
    assert r["kills"] == 3 and len(r["rounds"]) == 3
    # every kill hit batches in flight (otherwise the test proves nothing)
    assert all(round_["in_flight_at_kill"] > 0 for round_ in r["rounds"])
    assert r["send_failures"] >= 3 and r["resent_batches"] >= 3
    assert r["acked_events"] == r["batches"] * r["batch_size"]  # all resent and acked at last
    assert r["acked_events_lost"] == 0
    assert r["duplicate_events"] == 0 and r["unknown_events"] == 0
    assert r["logged_events"] == r["acked_events"]
    # replays of durable-but-unacknowledged batches came back as duplicates, not new events
    assert r["accepted"] + r["duplicates_reported"] == r["acked_events"]
    assert r["duplicates_reported"] == r["durable_but_unacked_events"]
    # the online state after the crashes: rebuilt from the log (serving/state_keeper.py), so
    # every acknowledged click is there, once
    assert r["online_users_checked"] > 100
    assert r["online_clicks_missing"] == 0 and r["online_clicks_extra"] == 0
