"""Backend-specific behaviour: Redis failures surface as StoreUnavailable fast; the memory
store's SQLite snapshot survives a restart; the URL factory."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from newsdesk.errors import ConfigError, StoreUnavailable
from newsdesk.features import open_online_store
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.online_store import Click
from newsdesk.features.redis_store import RedisOnlineStore
from tests.conftest import RedisProcess


def _all_calls(store: RedisOnlineStore) -> dict[str, object]:
    return {
        "record_impressions": lambda: store.record_impressions(["a"], 1.0),
        "record_clicks": lambda: store.record_clicks("u", ["a"], 1.0),
        "user_clicks": lambda: store.user_clicks("u"),
        "article_stats": lambda: store.article_stats(["a"], 1.0),
        "trending": lambda: store.trending(5, 1.0),
        "trending_candidates": lambda: store.trending(5, 1.0, candidates=["a"]),
    }


@pytest.mark.redis
def test_killed_redis_raises_store_unavailable_fast(redis_process: RedisProcess) -> None:
    store = RedisOnlineStore(redis_process.url)
    store.record_clicks("u", ["a"], 1.0)
    assert store.article_stats(["a"], 1.0)[0].clicks == 1
    redis_process.kill()
    for name, call in _all_calls(store).items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="redis online store"):
            call()  # type: ignore[operator]
        assert time.monotonic() - started < 1.0, f"{name} took too long to fail"
    assert store.ping() is False
    store.close()


@pytest.mark.redis
def test_hung_redis_times_out_instead_of_hanging(redis_process: RedisProcess) -> None:
    """A server that accepts nothing (SIGSTOP) must fail within the socket timeout."""
    store = RedisOnlineStore(redis_process.url, socket_timeout_s=0.05)
    assert store.ping() is True
    os.kill(redis_process.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            store.article_stats(["a"], 1.0)
        assert time.monotonic() - started < 1.0
    finally:
        os.kill(redis_process.process.pid, signal.SIGCONT)
    # once the server answers again, a new call works (the broken connection was dropped)
    deadline = time.monotonic() + 5
    while not store.ping() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.article_stats(["a"], 1.0)[0].clicks == 0
    store.close()


@pytest.mark.redis
def test_redis_state_is_shared_between_clients(redis_server: str) -> None:
    """Two replicas (two clients) see each other's writes; prune drops fully decayed items."""
    first = RedisOnlineStore(redis_server, prefix="shared-test:", half_life_hours=1.0)
    second = RedisOnlineStore(redis_server, prefix="shared-test:", half_life_hours=1.0)
    try:
        first.record_clicks("u", ["a"], 0.0)
        second.record_clicks("v", ["b"], 10 * 3600.0)
        assert [a for a, _ in second.trending(5, 10 * 3600.0)] == ["b", "a"]
        assert first.user_clicks("v") == [Click("b", 36000.0)]
        assert first.prune(now=10 * 3600.0, min_decayed_clicks=0.01) == 1  # a: 2**-10
        assert [a for a, _ in first.trending(5, 10 * 3600.0)] == ["b"]
    finally:
        first.clear()
        first.close()
        second.close()


def test_memory_snapshot_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = MemoryOnlineStore(half_life_hours=1.0, max_user_clicks=3, persist_path=path)
    store.record_impressions(["a", "b"], 0.0)
    store.record_clicks("u", ["a", "b", "a", "c"], 3600.0)
    before = store.article_stats(["a", "b", "c"], 7200.0)
    trending = store.trending(3, 7200.0)
    store.close()  # snapshots

    again = MemoryOnlineStore(half_life_hours=1.0, max_user_clicks=3, persist_path=path)
    assert again.article_stats(["a", "b", "c"], 7200.0) == before
    assert again.trending(3, 7200.0) == trending
    assert [c.article_id for c in again.user_clicks("u")] == ["c", "a", "b"]
    again.record_clicks("u", ["d"], 7200.0)  # the loaded index keeps working
    assert again.user_clicks("u", limit=1) == [Click("d", 7200.0)]
    again.close()

    with pytest.raises(ConfigError, match="half_life_hours"):
        MemoryOnlineStore(half_life_hours=2.0, persist_path=path)


def test_memory_periodic_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = MemoryOnlineStore(persist_path=path, snapshot_interval_s=0.05)
    store.record_clicks("u", ["a"], 1.0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait for the background snapshot, without close()
        if path.exists() and MemoryOnlineStore(persist_path=path).user_clicks("u"):
            break
        time.sleep(0.05)
    assert MemoryOnlineStore(persist_path=path).user_clicks("u") == [Click("a", 1.0)]
    store.close()


@pytest.mark.redis
def test_open_online_store_urls(tmp_path: Path, redis_server: str) -> None:
    memory = open_online_store("memory://", half_life_hours=2.0)
    assert isinstance(memory, MemoryOnlineStore) and memory.half_life_hours == 2.0
    persisted = open_online_store(f"memory:///{tmp_path}/s.db")
    assert isinstance(persisted, MemoryOnlineStore)
    assert persisted.persist_path == tmp_path / "s.db"
    redis_store = open_online_store(redis_server)
    assert isinstance(redis_store, RedisOnlineStore) and redis_store.ping()
    redis_store.close()
    with pytest.raises(ConfigError, match="unknown scheme 'cassandra'"):
        open_online_store("cassandra://x")
    with pytest.raises(ConfigError, match="half_life_hours"):
        open_online_store("memory://", half_life_hours=0)
