"""A Redis that answers, but slowly, is reported slow (and not down): the keeper's pings
through a latency proxy in front of a real redis-server."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import CollectorRegistry

from newsdesk.chaos.proxy import ProxyProcess
from newsdesk.features.redis_store import RedisOnlineStore
from newsdesk.serving.state_keeper import OnlineStateKeeper

pytestmark = pytest.mark.redis


def _gauge(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"dependency": "online_store"})


def test_slow_store_is_reported_slow_while_slow_and_cleared_after(redis_server: str) -> None:
    proxy = ProxyProcess(int(redis_server.rsplit(":", 1)[1].split("/")[0]))
    store = RedisOnlineStore(f"redis://127.0.0.1:{proxy.port}/0",
                             prefix=f"slow-{uuid.uuid4().hex[:8]}:")
    registry = CollectorRegistry()
    keeper = OnlineStateKeeper(store, None, None, registry=registry, slow_store_s=0.01)
    try:
        for _ in range(3):
            keeper._sample()
        assert keeper.slow == {}  # a local Redis: well under 10 ms
        proxy.set_delay(0.015)  # each way: ~30 ms a round trip, under the 50 ms timeout
        keeper._sample()
        assert keeper.slow == {}  # one slow ping is not enough (median of three)
        keeper._sample()
        assert keeper.slow["online_store_ms"] >= 25
        assert _gauge(registry, "newsdesk_dependency_up") == 1.0  # slow, not down
        assert _gauge(registry, "newsdesk_dependency_roundtrip_seconds") >= 0.025
        proxy.set_delay(0.0)
        for _ in range(3):
            keeper._sample()
        assert keeper.slow == {}
        assert _gauge(registry, "newsdesk_dependency_roundtrip_seconds") < 0.01
    finally:
        store.close()
        proxy.stop()
