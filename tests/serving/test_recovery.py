"""Recovery after an online-store outage: the breaker's probe, with a real redis-server.

The breaker's reset timeout is set long (30 s) in the service tests, so that a request's
half-open trial cannot be what brings the service back: only the probe off the request path
can (serving/resilience.py, BreakerProbe). The old breaker stayed open (or half-open, with no
request to try it) for the whole reset timeout after Redis was back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from newsdesk.data.schema import Article
from newsdesk.errors import StoreUnavailable
from newsdesk.serving.app import create_app
from newsdesk.serving.resilience import BreakerProbe, CircuitBreaker, CircuitOpen
from tests.serving.conftest import ADMIN_KEY, ctr_factory, make_settings, running

pytestmark = pytest.mark.anyio

RECOVERY_TARGET_S = 5.0  # issue 13: whole again within 5 s of the fault's end


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _down() -> None:
    raise StoreUnavailable("down")


def test_probe_closes_an_open_circuit_on_probation() -> None:
    clock = Clock()  # stands still: the reset timeout never passes, only the probe can close
    breaker = CircuitBreaker("s", failure_threshold=3, reset_s=30.0, clock=clock)
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            breaker.call(_down)
    assert breaker.state == "open"
    assert breaker.probe(lambda: False) is False  # still down: nothing changes
    assert breaker.probe(_down) is False  # a probe that raises is a failed probe
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1)
    assert breaker.probe(lambda: True) is True
    assert breaker.state == "closed"
    assert breaker.call(lambda: 7) == 7  # requests use the backend again at once
    # probation ended with that success: it takes `failure_threshold` failures again
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            breaker.call(_down)
    assert breaker.state == "closed"
    with pytest.raises(StoreUnavailable):
        breaker.call(_down)
    assert breaker.state == "open"
    # on probation (no success since the probe), the first failure re-opens the circuit
    assert breaker.probe(lambda: True)
    with pytest.raises(StoreUnavailable):
        breaker.call(_down)
    assert breaker.state == "open"


def test_probe_thread_pings_only_while_the_circuit_is_open() -> None:
    breaker = CircuitBreaker("s", failure_threshold=1, reset_s=30.0)
    answers = {"up": False}
    pings: list[float] = []

    def ping() -> bool:
        pings.append(time.monotonic())
        return answers["up"]

    recovered: list[str] = []
    probe = BreakerProbe(breaker, ping, interval_s=0.02,
                         on_recovered=lambda: recovered.append(breaker.state)).start()
    try:
        time.sleep(0.2)
        assert pings == []  # closed: no ping at all
        with pytest.raises(StoreUnavailable):
            breaker.call(_down)
        deadline = time.monotonic() + 5
        while len(pings) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pings) >= 3 and breaker.state == "open"  # pinged, still down
        answers["up"] = True
        while breaker.state != "closed" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert breaker.state == "closed"
        n = len(pings)
        time.sleep(0.2)
        assert len(pings) == n  # closed again: pinging stopped
        assert recovered == ["closed"]  # once per outage
    finally:
        probe.stop()
    # a request's trial closed the circuit between two looks: recovered all the same
    later: list[bool] = []
    probe = BreakerProbe(breaker, lambda: False, interval_s=60,
                         on_recovered=lambda: later.append(True))
    with pytest.raises(StoreUnavailable):
        breaker.call(_down)
    assert probe.tick() is False and later == []
    breaker.reset_s = 0.0  # the next call is a half-open trial
    assert breaker.call(lambda: 1) == 1 and breaker.state == "closed"
    assert probe.tick() is True and later == [True]
    assert probe.tick() is True and later == [True]
    with pytest.raises(ValueError, match="interval_s"):
        BreakerProbe(breaker, ping, interval_s=0)


async def _whole_again(client: httpx.AsyncClient, user: str, *, after: float, rebuilds: int
                       ) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Seconds from `after` until /readyz is ready and whole (checks pass, circuit closed,
    online state ok after `rebuilds` rebuilds) and an answer is personalised (not degraded);
    polled every 0.1 s with no other traffic, so no request's trial can close the circuit."""
    deadline = after + 3 * RECOVERY_TARGET_S
    while True:
        ready = await client.get("/readyz")
        body = ready.json()
        if (ready.status_code == 200 and body["status"] == "ready" and "breaker" not in body
                and body.get("online_state", {}).get("state") == "ok"
                and body["online_state"]["rebuilds"] >= rebuilds):
            answer = (await client.post("/v1/recommendations",
                                        json={"user_id": user, "k": 8})).json()
            if not answer["degraded"]:
                return time.monotonic() - after, body, answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not whole {3 * RECOVERY_TARGET_S} s after the fault: {body}")
        await anyio.sleep(0.1)


def _unchanged(online_state: dict[str, Any]) -> bool:
    """No rebuild started or done yet."""
    return online_state["state"] == "ok" and online_state["rebuilds"] == 0


async def _fault(client: httpx.AsyncClient) -> None:
    """Requests while the store is down: answered, degraded; the circuit opens."""
    for i in range(6):
        r = await client.post("/v1/recommendations", json={"user_id": f"u{i}", "k": 8})
        assert r.status_code == 200 and r.json()["degraded"] is True
    body = (await client.get("/readyz")).json()
    assert body["breaker"] in ("open", "half_open") and body["checks"]["online_store"] is False


@pytest.mark.redis
@pytest.mark.timeout(60)
async def test_paused_redis_is_used_again_within_5s_of_resuming(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    from newsdesk.chaos.redis import RedisServer

    redis = RedisServer(tmp_path / "redis")
    redis.start()
    app = create_app(make_settings(tmp_path, dataset_dir, online_store_url=redis.url,
                                   breaker_failure_threshold=2, breaker_reset_s=30),
                     recommender_factory=ctr_factory(articles))
    try:
        async with running(app) as client:
            assert not (await client.post("/v1/recommendations",
                                          json={"user_id": "u", "k": 8})).json()["degraded"]
            redis.pause()
            try:
                await _fault(client)
            finally:
                redis.resume()
            took, body, answer = await _whole_again(client, "u", after=time.monotonic(),
                                                    rebuilds=0)
            assert took <= RECOVERY_TARGET_S, took
            assert body["online_state"]["rebuilds"] == 0  # paused is not emptied
    finally:
        redis.kill()


@pytest.mark.redis
@pytest.mark.timeout(60)
async def test_redis_back_empty_is_rebuilt_and_used_within_5s(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    from newsdesk.chaos.redis import RedisServer

    redis = RedisServer(tmp_path / "redis")
    redis.start()
    app = create_app(make_settings(tmp_path, dataset_dir, online_store_url=redis.url,
                                   breaker_failure_threshold=2, breaker_reset_s=30),
                     recommender_factory=ctr_factory(articles))
    try:
        async with running(app) as client:
            clicks = [{"type": "click", "event_id": f"e{i}", "user_id": "reader",
                       "article_id": f"a{i:03d}"} for i in range(3)]
            clicks += [{"type": "click", "event_id": "g1", "user_id": "gone",
                        "article_id": "a004"},
                       {"type": "dismiss", "event_id": "d1", "user_id": "reader",
                        "article_id": "a005", "reason": "not_interested"}]
            assert (await client.post("/v1/events", json={"events": clicks})).json()["applied"]
            erase = await client.delete("/v1/users/gone", headers={"X-API-Key": ADMIN_KEY})
            assert erase.status_code == 200
            redis.kill()
            await _fault(client)
            assert _unchanged((await client.get("/readyz")).json()["online_state"])
            redis.start()  # the same port, EMPTY (no persistence)
            # the probe wakes the state keeper: the empty store is seen at once, not after
            # requests read it empty for up to a watch round
            t = time.monotonic()
            while _unchanged((await client.get("/readyz")).json()["online_state"]):
                assert time.monotonic() - t < RECOVERY_TARGET_S
                await anyio.sleep(0.05)
            took, body, _ = await _whole_again(client, "reader", after=time.monotonic(),
                                               rebuilds=1)
            assert took <= RECOVERY_TARGET_S, took
            assert body["online_state"]["last"]["reason"] == "store_emptied"
            # the reader's clicks came back from the durable event log
            recent = (await client.get("/v1/users/reader/recent",
                                       headers={"X-API-Key": ADMIN_KEY})).json()
            assert {c["article_id"] for c in recent["clicks"]} == {"a000", "a001", "a002"}
            # ... with the dismissal; an erased reader's clicks stay gone
            from newsdesk.features.dismissals import read_dismissals

            store = app.state.services.store
            assert [d.article_id for d in read_dismissals(store, "reader")] == ["a005"]
            gone = (await client.get("/v1/users/gone/recent",
                                     headers={"X-API-Key": ADMIN_KEY})).json()
            assert gone["clicks"] == []
    finally:
        redis.kill()


def _logged_events(n: int = 600) -> list[Any]:
    """Events as the log holds them: impressions and clicks, some clicks sharing a time (a
    batch), some logged out of time order (a client's late resend), dwell events ignored."""
    import random
    from datetime import UTC, datetime, timedelta

    from newsdesk.data.schema import Impression, Interaction, InteractionType

    rng = random.Random(5)
    t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    out: list[Any] = []
    for i in range(n):
        ts = t0 + timedelta(seconds=i // 4 * 7.0 - (300.0 if i % 37 == 0 else 0.0))
        user = f"u{rng.randrange(30)}"
        if i % 3 == 0:
            out.append(Impression(request_id=f"r{i}", user_id=user, timestamp=ts,
                                  article_ids=[f"a{rng.randrange(40)}" for _ in range(5)]))
        else:
            kind = InteractionType.CLICK if i % 11 else InteractionType.DWELL
            out.append(Interaction(event_id=f"e{i}", type=kind, user_id=user,
                                   article_id=f"a{rng.randrange(40)}", timestamp=ts,
                                   dwell_seconds=3.0 if kind is InteractionType.DWELL
                                   else None))
    return out


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_merged_replay_is_the_state_of_recording_each_event(backend: str,
                                                           redis_server: str) -> None:
    """The rebuild's replay and the deferred events go through `merge_logged_events` (bulk
    merges): the state must be the one `record_events` gives -- counts, decayed counts,
    trending order, and each reader's clicks in the same order, same-time clicks included.
    Clicks logged out of time order are where the two may differ (by design: by time), so
    they are compared as sets."""
    import numpy as np

    from newsdesk.features import open_online_store
    from newsdesk.features.bootstrap import merge_logged_events

    events = _logged_events()
    if backend == "redis":
        from newsdesk.features.redis_store import RedisOnlineStore

        one = RedisOnlineStore(redis_server, prefix=f"rec-one-{time.time_ns()}:")
        two = RedisOnlineStore(redis_server, prefix=f"rec-two-{time.time_ns()}:")
    else:
        one, two = open_online_store("memory://"), open_online_store("memory://")
    try:
        for start in range(0, len(events), 200):
            one.record_events(events[start:start + 200])
            assert merge_logged_events(two, events[start:start + 200]) == len(
                events[start:start + 200])
        ids = [f"a{i}" for i in range(40)]
        now = max(e.timestamp.timestamp() for e in events) + 600
        np.testing.assert_allclose(one.stats_matrix(ids, now), two.stats_matrix(ids, now),
                                   rtol=1e-9)
        assert one.stats_matrix(ids, now)[:, 2].sum() > 0  # clicks were counted
        assert [a for a, _ in one.trending(20, now)] == [a for a, _ in two.trending(20, now)]
        late = {e.user_id for i, e in enumerate(events) if i % 37 == 0}
        for user in (f"u{i}" for i in range(30)):
            a, b = one.user_clicks(user), two.user_clicks(user)
            assert a, user
            if user in late:
                assert set(a) == set(b)
            else:
                assert a == b, user
    finally:
        if backend == "redis":
            one.clear()
            two.clear()
        one.close()
        two.close()


@pytest.mark.redis
@pytest.mark.timeout(60)
def test_readiness_is_patient_with_a_slow_redis_not_with_a_stopped_one(tmp_path: Path) -> None:
    """/readyz asks `ready` (0.5 s of patience), the request path and the breaker's probe
    `ping` (50 ms): a Redis answering in ~80 ms (a loaded machine, through the latency proxy)
    is slow for requests but up; a stopped one is down for both, and said so in time."""
    from newsdesk.chaos.proxy import LatencyProxy
    from newsdesk.chaos.redis import RedisServer
    from newsdesk.errors import ConfigError
    from newsdesk.features.redis_store import RedisOnlineStore

    redis = RedisServer(tmp_path / "redis")
    redis.start()
    proxy = LatencyProxy("127.0.0.1", redis.port)
    proxy.start()
    store = RedisOnlineStore(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        assert store.ping() and store.ready()
        proxy.set_delay(0.04)  # a round trip costs ~80 ms more
        assert store.ready()
        assert not store.ping()
        proxy.set_delay(0.0)
        redis.pause()
        start = time.perf_counter()
        assert not store.ready()
        assert time.perf_counter() - start < 2.0
        assert not store.ping()
    finally:
        redis.resume()
        store.close()
        proxy.stop()
        redis.kill()
    with pytest.raises(ConfigError, match="ready_timeout_s"):
        RedisOnlineStore(redis.url, ready_timeout_s=0)
