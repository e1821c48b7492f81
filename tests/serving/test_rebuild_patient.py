"""A rebuild of the online state runs off the request path with the store's patient timeouts
(`OnlineStore.patient`): a Redis slower than the request path's 50 ms must not fail it, and a
lock this process left behind must not stop it (a real redis-server)."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsdesk.data.eventlog.sqlite import SQLiteEventLog
from newsdesk.data.schema import Interaction
from newsdesk.errors import StoreUnavailable
from newsdesk.features.redis_store import RedisOnlineStore
from newsdesk.serving.state_keeper import LOCK, SENTINEL, OnlineStateKeeper, last_seq

pytestmark = pytest.mark.redis


def _log(tmp_path: Path) -> SQLiteEventLog:
    log = SQLiteEventLog(tmp_path / "events.db")
    t = datetime(2026, 1, 5, 12, tzinfo=UTC)
    log.append([Interaction(event_id=f"e{i}", type="click", user_id="reader",
                            article_id=f"a{i}", timestamp=t.replace(minute=i))
                for i in range(3)])
    return log


@pytest.fixture
def slow_redis(redis_server: str) -> Iterator[str]:
    """The session's redis-server behind the latency proxy: +60 ms per chunk each way, past
    the store's 50 ms request-path timeout (a loaded machine), well within the patient one."""
    from newsdesk.chaos.proxy import ProxyProcess

    proxy = ProxyProcess(int(redis_server.rsplit(":", 1)[1].split("/")[0]))
    proxy.set_delay(0.06)
    try:
        yield f"redis://127.0.0.1:{proxy.port}/0"
    finally:
        proxy.stop()


def _hasty_store(url: str) -> RedisOnlineStore:
    store = RedisOnlineStore(url, prefix=f"patient-{uuid.uuid4().hex[:8]}:")
    with pytest.raises(StoreUnavailable):  # the request path gives up on this Redis
        store.read_marker(SENTINEL)
    return store


def test_a_rebuild_completes_where_the_request_path_times_out(slow_redis: str,
                                                              tmp_path: Path) -> None:
    store, log = _hasty_store(slow_redis), _log(tmp_path)
    keeper = OnlineStateKeeper(store, log, None)
    keeper._rebuild("store_emptied", last_seq(log), with_dataset=False)
    assert (keeper.state, keeper.rebuilds) == ("ok", 1), keeper.last
    patient = store.patient()
    assert json.loads(patient.read_marker(SENTINEL) or "{}")["log_seq"] == 3
    assert patient.read_marker(LOCK) is None  # unlocked after
    assert [c.article_id for c in patient.user_clicks("reader")] == ["a2", "a1", "a0"]
    patient.clear()
    store.close()
    log.close()


def test_an_orphan_lock_of_this_process_is_taken_over_not_another_s(slow_redis: str,
                                                                   tmp_path: Path) -> None:
    store, log = _hasty_store(slow_redis), _log(tmp_path)
    patient = store.patient()
    keeper = OnlineStateKeeper(store, log, None)
    # another process rebuilding: left to it
    patient.write_marker(LOCK, json.dumps({"host": "elsewhere", "pid": 1, "since": time.time()}))
    keeper._rebuild("store_emptied", last_seq(log), with_dataset=False)
    assert keeper.state == "rebuilding_elsewhere" and keeper.rebuilds == 0
    # this process's own lock (a claim whose reply came too late): taken over
    patient.write_marker(LOCK, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                           "since": time.time()}))
    keeper._rebuild("store_emptied", last_seq(log), with_dataset=False)
    assert (keeper.state, keeper.rebuilds) == ("ok", 1), keeper.last
    assert patient.read_marker(LOCK) is None
    patient.clear()
    store.close()
    log.close()


def test_the_per_worker_cache_hands_out_the_patient_store(slow_redis: str,
                                                          tmp_path: Path) -> None:
    # with several workers the keeper holds the stats cache over Redis, not Redis itself:
    # its patient view must be Redis' patient one, not the cache on the 50 ms client
    from newsdesk.features.stats_cache import StatsCachingStore

    inner, log = _hasty_store(slow_redis), _log(tmp_path)
    keeper = OnlineStateKeeper(StatsCachingStore(inner, ttl_s=5.0), log, None)
    keeper._rebuild("store_emptied", last_seq(log), with_dataset=False)
    assert (keeper.state, keeper.rebuilds) == ("ok", 1), keeper.last
    patient = inner.patient()
    assert [c.article_id for c in patient.user_clicks("reader")] == ["a2", "a1", "a0"]
    patient.clear()
    inner.close()
    log.close()
