"""The online store's bootstrap from a dataset (`newsdesk.features.bootstrap`), on both
backends: the same state as recording every event one by one, idempotent, incremental after
the dataset grew, events already in the event log not counted twice, one load per shared
store, and the `newsdesk store load` command."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.data.eventlog import open_event_log
from newsdesk.data.eventlog.sqlite import SQLiteEventLog
from newsdesk.data.schema import Impression, Interaction
from newsdesk.features import open_online_store
from newsdesk.features.bootstrap import bootstrap_store, read_marker
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.online_store import OnlineStore

NEWSDESK = [sys.executable, "-m", "newsdesk.cli.main"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bootstrap") / "sim"
    subprocess.run([*NEWSDESK, "simulate", "--seed", "3", "--users", "400", "--days", "1",
                    "--impressions-per-day", "1500", "--articles-per-day", "120",
                    "--out", str(out)], check=True, capture_output=True, timeout=120)
    return out


def replayed(ds: Dataset, store: OnlineStore, *, until: float | None = None) -> None:
    """The reference: every history and event recorded one by one, in time order."""
    for row in ds.read("histories").iter_rows(named=True):
        store.record_clicks(row["user_id"], row["article_ids"], row["as_of"].timestamp())
    clicks = ds.read("interactions").filter(pl.col("type") == "click").sort("timestamp")
    for uid, aid, ts in clicks.select("user_id", "article_id", "timestamp").iter_rows():
        if until is None or ts.timestamp() <= until:
            store.record_clicks(uid, [aid], ts.timestamp())
    for uid, ids, ts in ds.read("impressions").sort("timestamp", maintain_order=True).select(
            "user_id", "article_ids", "timestamp").iter_rows():
        if until is None or ts.timestamp() <= until:
            store.record_impressions(ids, ts.timestamp())
            store.record_exposures(uid, ids, ts.timestamp())


def state(store: OnlineStore, ds: Dataset) -> tuple[np.ndarray, dict[str, list[str]]]:
    ids = ds.read("articles")["article_id"].to_list()
    now = ds.read("impressions")["timestamp"].max().timestamp() + 3600
    users = ds.read("histories")["user_id"].to_list() + ds.read("interactions")[
        "user_id"].to_list()
    lists = {u: [c.article_id for c in store.user_clicks(u)] for u in sorted(set(users))}
    readers = sorted(set(ds.read("impressions")["user_id"].to_list()))
    lists |= {f"shown:{u}": [(c.article_id, round(c.ts, 3)) for c in store.user_exposures(u)]
              for u in readers}
    return store.stats_matrix(ids, now), lists


def assert_same(a: OnlineStore, b: OnlineStore, ds: Dataset) -> None:
    (ma, la), (mb, lb) = state(a, ds), state(b, ds)
    np.testing.assert_allclose(ma, mb, rtol=1e-9, atol=1e-12)
    assert la == lb
    now = ds.read("impressions")["timestamp"].max().timestamp()
    assert [x for x, _ in a.trending(20, now)] == [x for x, _ in b.trending(20, now)]


EXPOSURES = 12  # exposure lists kept by the stores under test (a few readers reach the cap)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest) -> Iterator[object]:
    opened: list[OnlineStore] = []
    prefix = f"bt{uuid.uuid4().hex[:8]}:"

    def make() -> OnlineStore:
        if request.param == "memory":
            store: OnlineStore = MemoryOnlineStore(max_user_exposures=EXPOSURES)
        else:
            url = request.getfixturevalue("redis_server")
            store = open_online_store(url, prefix=prefix, max_user_exposures=EXPOSURES)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_bootstrap_equals_recording_every_event(sim: Path, make_store) -> None:
    ds = Dataset(sim)
    loaded, reference = make_store(), MemoryOnlineStore(max_user_exposures=EXPOSURES)
    report = bootstrap_store(loaded, sim)
    replayed(ds, reference)
    assert report.status == "loaded"
    assert report.users == len(set(ds.read("histories")["user_id"].to_list())
                               | set(ds.read("interactions").filter(pl.col("type") == "click")
                                     ["user_id"].to_list()))
    assert report.clicks == ds.read("interactions").filter(pl.col("type") == "click").height
    assert report.impressions == ds.count("impressions") > 0
    assert_same(loaded, reference, ds)


def test_loading_twice_changes_nothing(sim: Path, make_store) -> None:
    ds = Dataset(sim)
    store = make_store()
    bootstrap_store(store, sim)
    before = state(store, ds)
    again = bootstrap_store(store, sim)
    assert again.status == "up_to_date" and again.clicks == again.users == 0
    after = state(store, ds)
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1] == after[1]


def test_since_then_the_rest_is_incremental(sim: Path, make_store) -> None:
    """A load from a later time, then a plain load, gives what one full load gives...
    minus the events before --since, which a later load does not add back (documented)."""
    ds = Dataset(sim)
    times = ds.read("impressions")["timestamp"].sort()
    mid = times[len(times) // 2].timestamp()
    store = make_store()
    first = bootstrap_store(store, sim, since=mid)
    assert 0 < first.impressions < ds.count("impressions")
    marker = read_marker(store, ds.source)
    assert marker is not None and marker["loaded_until"] >= mid
    assert bootstrap_store(store, sim).status == "up_to_date"


def test_events_already_in_the_event_log_are_not_counted_twice(
        sim: Path, tmp_path: Path, make_store) -> None:
    """Events that reached the service live (logged + applied) and were exported into the
    dataset are skipped by their keys."""
    ds = Dataset(sim)
    log = open_event_log(f"sqlite:///{tmp_path}/events.db")
    store = make_store()
    live_clicks = [Interaction(**r) for r in ds.read("interactions").filter(
        pl.col("type") == "click").head(30).iter_rows(named=True)]
    live_imps = [Impression(**r) for r in ds.read("impressions").head(20).iter_rows(
        named=True)]
    log.append([*live_imps, *live_clicks])
    store.record_events([*live_imps, *live_clicks])  # what the service did when they came
    report = bootstrap_store(store, sim, event_log=log)
    log.close()
    assert report.skipped_in_event_log == 50
    reference = MemoryOnlineStore(max_user_exposures=EXPOSURES)
    bootstrap_store(reference, sim)
    m, _ = state(store, ds)
    r, _ = state(reference, ds)
    np.testing.assert_allclose(m[:, 2:], r[:, 2:])  # raw counts: each event exactly once
    np.testing.assert_allclose(m, r, rtol=1e-9, atol=1e-12)


class _CountingLog(SQLiteEventLog):
    """The SQLite log, counting the events it decodes (read)."""

    decoded = 0

    def read(self, since_seq: int = 0, limit: int | None = None,
             *, page_size: int = 1000) -> Iterator[tuple[int, Any]]:
        for row in super().read(since_seq, limit, page_size=page_size):
            self.decoded += 1
            yield row


def test_skipping_logged_events_reads_their_keys_not_the_events(sim: Path, tmp_path: Path
                                                                ) -> None:
    """A rebuild after Redis came back empty skips the dataset's events that the log holds:
    by their keys alone (EventLog.event_keys), never decoding the log (at the serve_load
    state's 823k logged events, decoding took ~40 s of the rebuild on a shared machine)."""
    ds = Dataset(sim)
    log = _CountingLog(tmp_path / "events.db")
    log.append([Interaction(**r) for r in ds.read("interactions").filter(
        pl.col("type") == "click").head(30).iter_rows(named=True)])
    report = bootstrap_store(MemoryOnlineStore(), sim, event_log=log)
    log.close()
    assert report.skipped_in_event_log == 30
    assert log.decoded == 0


def test_a_second_loader_of_a_shared_store_is_told_busy(sim: Path, make_store) -> None:
    store = make_store()
    assert store.claim_marker("bootstrap-lock:simulation", json.dumps({"since": 9e18}))
    assert bootstrap_store(store, sim).status == "busy"
    assert read_marker(store, "simulation") is None  # nothing loaded
    store.delete_marker("bootstrap-lock:simulation")
    assert bootstrap_store(store, sim).status == "loaded"


def test_a_crashed_load_is_reported_not_loaded_again(sim: Path, make_store) -> None:
    store = make_store()
    store.claim_marker("bootstrap-lock:simulation", json.dumps({"since": 0.0, "pid": 1}))
    report = bootstrap_store(store, sim)
    assert report.status == "interrupted" and "--force" in report.detail
    assert bootstrap_store(store, sim, force=True).status == "loaded"


def test_cli_store_load_embedded_persists_and_is_idempotent(sim: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    out = subprocess.run([*NEWSDESK, "store", "load", str(sim), "--state-dir", str(state_dir),
                          "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "loaded" and report["users"] > 0
    again = subprocess.run([*NEWSDESK, "store", "load", str(sim), "--state-dir",
                            str(state_dir)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "up_to_date" in again.stdout
    reopened = MemoryOnlineStore(persist_path=state_dir / "online.db")
    reference = MemoryOnlineStore()
    bootstrap_store(reference, sim)
    assert_same(reopened, reference, Dataset(sim))
    reopened.close()


def test_cli_store_load_names_the_bad_option(sim: Path) -> None:
    out = subprocess.run([*NEWSDESK, "store", "load", str(sim)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "--redis-url" in (out.stderr + out.stdout)


@pytest.mark.redis
def test_cli_store_load_into_redis(sim: Path, redis_server: str) -> None:
    import redis

    db_url = redis_server.rsplit("/", 1)[0] + "/5"
    redis.Redis.from_url(db_url).flushdb()
    out = subprocess.run([*NEWSDESK, "store", "load", str(sim), "--redis-url", db_url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    store = open_online_store(db_url)
    reference = MemoryOnlineStore()
    bootstrap_store(reference, sim)
    assert_same(store, reference, Dataset(sim))
    store.close()
