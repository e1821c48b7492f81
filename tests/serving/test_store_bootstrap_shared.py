"""The start-up bootstrap when another process sharing the store holds the load (a sibling
worker of `newsdesk serve --workers N`, or a replica): this one stays "loading" until that
load is over, instead of reporting ready over a half-loaded store."""

from __future__ import annotations

import json
import time
from pathlib import Path

from newsdesk.data.dataset import Dataset
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.serving.store_bootstrap import StoreBootstrapJob


def test_a_busy_load_keeps_the_job_loading_until_the_holder_is_done(
        dataset_dir: Path) -> None:
    store = MemoryOnlineStore()
    lock = f"bootstrap-lock:{Dataset(dataset_dir).source}"
    assert store.claim_marker(lock, json.dumps({"host": "other", "pid": 1,
                                                "since": time.time()}))
    job = StoreBootstrapJob(store, dataset_dir)
    job.start()
    time.sleep(2.5)  # two polls of the lock
    assert job.loading and job.state == "loading"
    store.delete_marker(lock)  # the other process finished (here: gave up; we load)
    assert job.finished.wait(30)
    assert job.state in ("done", "up_to_date") and not job.loading


def test_join_stops_waiting_for_another_process(dataset_dir: Path) -> None:
    store = MemoryOnlineStore()
    lock = f"bootstrap-lock:{Dataset(dataset_dir).source}"
    store.claim_marker(lock, json.dumps({"host": "other", "pid": 1, "since": time.time()}))
    job = StoreBootstrapJob(store, dataset_dir)
    job.start()
    started = time.monotonic()
    job.join(timeout_s=10)
    assert job.finished.is_set() and time.monotonic() - started < 5
    assert job.state == "busy"
