"""The stream consumer applies the shared event log to the Redis online store once per event.

Real redis-server (the session fixture, each test under its own key prefixes); a "killed"
consumer is either a consumer object that read entries and never applied them (the exact state
a SIGKILL between XREADGROUP and EXEC leaves), or a real child process SIGKILLed mid-backlog.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsdesk.data.eventlog import open_event_log
from newsdesk.data.eventlog.redis_streams import RedisStreamEventLog
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.redis_store import RedisOnlineStore
from newsdesk.serving.event_consumer import (
    AT_LEAST_ONCE,
    EXACTLY_ONCE,
    StreamApplier,
    start_event_consumer,
)

pytestmark = pytest.mark.redis
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ARTICLES = [f"a{i}" for i in range(7)]


@dataclass
class World:
    url: str
    log: RedisStreamEventLog
    store: RedisOnlineStore
    log_prefix: str
    store_prefix: str


@pytest.fixture
def world(redis_server: str) -> Iterator[World]:
    tag = uuid.uuid4().hex[:10]
    log_prefix, store_prefix = f"log-{tag}:", f"st-{tag}:"
    log = RedisStreamEventLog(redis_server, prefix=log_prefix)
    store = RedisOnlineStore(redis_server, prefix=store_prefix, socket_timeout_s=2.0)
    yield World(redis_server, log, store, log_prefix, store_prefix)
    store.close()
    log.close()


def impressions(prefix: str, n: int, offset: int = 0) -> list[dict]:
    """Impressions offset..offset+n-1, number i showing ARTICLES[i % 7] and the next two (so
    the counts after the first k of them are `expected_impressions(k)`)."""
    return [{"kind": "impression", "request_id": f"{prefix}-{i}", "user_id": f"u{i % 5}",
             "timestamp": T0, "article_ids": [ARTICLES[(i + j) % 7] for j in range(3)]}
            for i in range(offset, offset + n)]


def clicks(prefix: str, n: int) -> list[dict]:
    return [{"event_id": f"{prefix}-c{i}", "type": "click", "user_id": f"u{i % 5}",
             "article_id": ARTICLES[i % 7], "timestamp": T0} for i in range(n)]


def expected_impressions(n: int) -> dict[str, int]:
    counts = dict.fromkeys(ARTICLES, 0)
    for i in range(n):
        for j in range(3):
            counts[ARTICLES[(i + j) % 7]] += 1
    return counts


def counts(store: RedisOnlineStore) -> tuple[dict[str, int], dict[str, int]]:
    stats = store.article_stats(ARTICLES, T0.timestamp())
    return ({a: s.impressions for a, s in zip(ARTICLES, stats, strict=True)},
            {a: s.clicks for a, s in zip(ARTICLES, stats, strict=True)})


def drain(applier: StreamApplier) -> None:
    for _ in range(1000):
        if applier.poll_once(block=False) == 0:
            return
    raise AssertionError("the consumer did not drain the stream")


def test_applies_every_event_once_and_a_retried_batch_not_again(world: World) -> None:
    applier = StreamApplier(world.log, world.store, claim_idle_s=0.2)
    assert applier.mode == EXACTLY_ONCE
    applier.ensure_group()
    result, seqs = applier.append([*impressions("r", 40), *clicks("e", 14)])  # type: ignore[list-item]
    assert result.accepted == 54 and all(s > 0 for s in seqs)
    assert applier.is_applied(seqs) is False  # logged, not yet applied
    drain(applier)
    assert applier.is_applied(seqs) is True
    shown, clicked = counts(world.store)
    assert shown == expected_impressions(40)
    assert clicked == {a: 2 for a in ARTICLES}
    assert len(world.store.user_clicks("u0")) == 3  # clicks 0, 5, 10

    # the client retries the same batch (its ack was lost): all duplicates, nothing applied
    again, again_seqs = applier.append(impressions("r", 40))  # type: ignore[arg-type]
    assert (again.accepted, again.duplicates) == (0, 40) and set(again_seqs) == {0}
    drain(applier)
    assert counts(world.store) == (shown, clicked)
    assert int(world.log.client.get(applier.applied_key)) == 54
    health = applier.health()
    assert health["pending"] == 0 and health["lag"] == 0 and health["applied"] == 54


def test_a_dead_consumers_entries_are_claimed_and_applied_once(world: World) -> None:
    live = StreamApplier(world.log, world.store, claim_idle_s=0.2)
    live.ensure_group()
    dead = StreamApplier(world.log, world.store, consumer="dead-replica")
    world.log.append(impressions("r", 30))
    fence = dead.fence()
    stolen = dead.read(block=False)  # delivered to the dead consumer, never applied or acked
    assert len(stolen) == 30
    assert live.poll_once(block=False) == 0  # nothing new for the live one; not idle yet
    assert counts(world.store)[0] == dict.fromkeys(ARTICLES, 0)

    time.sleep(0.3)
    assert live.claim() == 30
    drain(live)
    assert counts(world.store)[0] == expected_impressions(30)
    # the "dead" consumer was only slow: its late apply is fenced off, not applied twice
    assert dead.apply(stolen, fence) is False
    assert counts(world.store)[0] == expected_impressions(30)
    assert int(world.log.client.get(live.applied_key)) == 30
    assert live.health()["pending"] == 0


def test_reap_deletes_idle_consumers_with_nothing_pending_only(world: World) -> None:
    live = StreamApplier(world.log, world.store, consumer="live")
    live.ensure_group()
    world.log.append(impressions("r", 4))
    holder = StreamApplier(world.log, world.store, consumer="holder", batch=2)
    holder.read(block=False)  # holds 2 entries
    idle = StreamApplier(world.log, world.store, consumer="idle", batch=2)
    drain(idle)  # applied the other 2: nothing pending
    assert live.read(block=False) == []  # joins the group (nothing left to deliver)
    time.sleep(0.05)
    assert live.reap(idle_s=0.02) == 1
    names = {c["name"] for c in world.log.client.xinfo_consumers(world.log.stream_key,
                                                                  "appliers")}
    assert names == {"live", "holder"}  # the holder's entries are still in the group


def test_a_fenced_consumer_keeps_what_it_still_owns(world: World) -> None:
    """A claim aborts every in-flight batch; entries not taken are re-read and applied."""
    a = StreamApplier(world.log, world.store, consumer="a", batch=10, claim_idle_s=0.2)
    b = StreamApplier(world.log, world.store, consumer="b", batch=10, claim_idle_s=0.2)
    a.ensure_group()
    world.log.append(impressions("old", 10))
    b.read(block=False)  # b takes 10 entries and dies
    time.sleep(0.3)
    world.log.append(impressions("new", 10))
    fence = a.fence()
    mine = a.read(block=False)  # a takes the 10 new ones...
    assert a.claim() == 10  # ...then claims b's, which moves the fence
    assert a.apply(mine, fence) is False
    drain(a)  # its own pending list now holds all 20
    assert counts(world.store)[0] == {k: v1 + v2 for (k, v1), v2 in zip(
        expected_impressions(10).items(), expected_impressions(10).values(), strict=True)}
    assert int(world.log.client.get(a.applied_key)) == 20


CHILD = textwrap.dedent(
    """
    import sys, time
    from newsdesk.data.eventlog.redis_streams import RedisStreamEventLog
    from newsdesk.features.redis_store import RedisOnlineStore
    from newsdesk.serving.event_consumer import StreamApplier

    url, log_prefix, store_prefix = sys.argv[1:4]
    log = RedisStreamEventLog(url, prefix=log_prefix)
    store = RedisOnlineStore(url, prefix=store_prefix, socket_timeout_s=2.0)
    applier = StreamApplier(log, store, consumer="child", batch=20).start()
    while True:  # until SIGKILL
        time.sleep(1)
    """
)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_consumer_sigkilled_mid_backlog_loses_nothing_and_applies_nothing_twice(
        world: World, tmp_path: Path) -> None:
    n = 6000
    for start in range(0, n, 1000):
        world.log.append(impressions("r", 1000, offset=start))
    applied_key = f"{world.log_prefix}applied:appliers"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, world.url, world.log_prefix,
                              world.store_prefix], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while int(world.log.client.get(applied_key) or 0) < n // 4:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child consumer made no progress"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        assert child.stderr is not None
        child.stderr.close()
    partial = int(world.log.client.get(applied_key))
    assert n // 4 <= partial < n, "kill the child mid-backlog, not after it"
    # one consumer applies in stream order and each EXEC is all or nothing: exactly the first
    # `partial` events are in the store
    assert counts(world.store)[0] == expected_impressions(partial)

    survivor = StreamApplier(world.log, world.store, claim_idle_s=0.3)
    deadline = time.monotonic() + 30
    while int(world.log.client.get(applied_key)) < n:
        assert time.monotonic() < deadline, "the survivor did not finish the backlog"
        survivor.claim()
        survivor.poll_once(block=False)
        time.sleep(0.01)
    assert int(world.log.client.get(applied_key)) == n
    assert counts(world.store)[0] == expected_impressions(n)
    assert survivor.health()["pending"] == 0


def test_store_on_another_server_is_at_least_once(world: World, redis_process) -> None:  # noqa: ANN001
    other = RedisOnlineStore(redis_process.url, prefix=world.store_prefix,
                             socket_timeout_s=2.0)
    try:
        applier = StreamApplier(world.log, other)
        assert applier.mode == AT_LEAST_ONCE
        applier.ensure_group()
        world.log.append(impressions("r", 12))
        drain(applier)
        assert counts(other)[0] == expected_impressions(12)
        assert counts(world.store)[0] == dict.fromkeys(ARTICLES, 0)  # not the log's server
    finally:
        other.close()


def test_consumer_thread_runs_reports_health_and_stops(world: World) -> None:
    applier = start_event_consumer(world.log, world.store, claim_idle_s=0.5)
    assert isinstance(applier, StreamApplier) and applier.alive
    try:
        _, seqs = world.log.append_seqs(clicks("e", 7))
        deadline = time.monotonic() + 2
        while not applier.is_applied(seqs):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert counts(world.store)[1] == dict.fromkeys(ARTICLES, 1)
        health = applier.health()
        assert health["ok"] is True and health["alive"] is True and health["applied"] == 7
    finally:
        applier.stop()
    assert applier.alive is False and applier.health()["ok"] is False


def test_no_consumer_without_a_shared_log_and_store(world: World, tmp_path: Path) -> None:
    sqlite_log = open_event_log(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        assert start_event_consumer(sqlite_log, world.store) is None
    finally:
        sqlite_log.close()
    assert start_event_consumer(world.log, MemoryOnlineStore()) is None


@pytest.mark.anyio
async def test_app_on_a_shared_log_applies_clicks_and_served_slates_once(
        tmp_path: Path, redis_process) -> None:  # noqa: ANN001
    """The in-process app with a Redis store and a Redis Stream log: the ingestor waits for the
    consumer; the exposure log's impressions are applied by the consumer only (not twice)."""
    from newsdesk.data.dataset import DatasetWriter
    from newsdesk.serving.app import create_app
    from tests.serving.conftest import ctr_factory, make_articles, make_settings, running

    articles = make_articles()
    dataset = tmp_path / "dataset"
    with DatasetWriter(dataset, source="test") as writer:
        writer.table("articles").write_rows(a.model_dump() for a in articles)
    url = redis_process.url
    app = create_app(make_settings(tmp_path, dataset, online_store_url=url, event_log_url=url),
                     recommender_factory=ctr_factory(articles))
    async with running(app) as client:
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["event_consumer"] is True
        ack = (await client.post("/v1/events", json={"events": [
            {"type": "click", "event_id": "e1", "user_id": "u1", "article_id": "a003"}]})).json()
        assert (ack["accepted"], ack["applied"]) == (1, True)
        store = app.state.services.store
        assert [c.article_id for c in store.user_clicks("u1")] == ["a003"]  # read-your-writes

        body = (await client.post("/v1/recommendations", json={"user_id": "u2", "k": 5})).json()
        shown = [it["article_id"] for it in body["items"]]
        log = app.state.services.event_log
        applier = app.state.services.ingestor.applier
        deadline = time.monotonic() + 5
        while not (log.count() == 2 and applier.health()["pending"] == 0
                   and applier.health()["lag"] == 0):
            assert time.monotonic() < deadline, applier.health()
            await asyncio.sleep(0.01)  # the exposure logger is a task on this loop
        now = app.state.services.clock()
        assert [s.impressions for s in store.article_stats(shown, now)] == [1] * 5
    assert applier.alive is False  # stopped with the app
