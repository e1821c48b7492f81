"""The leader lease: the contract on both backends, and a real leader killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from newsdesk.coordination import Lease, LeaseKeeper, LocalLease, RedisLease, open_lease
from newsdesk.errors import ConfigError

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(params=["local", "redis"])
def make_lease(request: pytest.FixtureRequest) -> Iterator[Callable[[str, float], Lease]]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    made: list[Lease] = []

    def make(owner: str, ttl_s: float) -> Lease:
        if request.param == "local":
            lease: Lease = LocalLease(name, ttl_s, owner)
        else:
            lease = RedisLease(request.getfixturevalue("redis_server"), name, ttl_s, owner)
        made.append(lease)
        return lease

    yield make
    for lease in made:
        lease.close()


def test_one_holder_renew_release_and_expiry(make_lease: Callable[[str, float], Lease]) -> None:
    a, b = make_lease("a", 0.3), make_lease("b", 0.3)
    assert a.try_acquire() and a.holder() == "a"
    assert not b.try_acquire() and not b.renew()  # never taken from a live holder
    assert a.try_acquire()  # re-acquire by the owner is a renewal
    b.release()  # not b's: a no-op
    assert a.holder() == "a"
    a.release()
    assert a.holder() is None and b.try_acquire() and b.holder() == "b"
    assert not a.renew()  # lost leases are not renewed
    time.sleep(0.4)  # b never renews: it expires
    assert b.holder() is None and not b.renew()
    assert a.try_acquire()


def test_a_stalled_leader_stops_before_a_successor_starts(
        make_lease: Callable[[str, float], Lease]) -> None:
    """Keeper A acquires and then stalls (no renewals); B polls. At no instant do both
    consider themselves leader, and B takes over within about one ttl."""
    ttl = 0.4
    a = LeaseKeeper(make_lease("a", ttl))
    b = LeaseKeeper(make_lease("b", ttl))
    assert a.tick() and not b.tick()
    start = time.monotonic()
    overlap = 0
    while not b.is_leader() and time.monotonic() - start < 3 * ttl:
        b.tick()
        overlap += a.is_leader() and b.is_leader()
        time.sleep(0.005)
    took = time.monotonic() - start
    assert b.is_leader() and not a.is_leader()
    assert overlap == 0
    assert took <= ttl + 0.15
    assert not a.tick()  # A wakes up: its renewal fails, it stays a follower


def test_keeper_thread_renews_and_stop_releases(make_lease: Callable[[str, float], Lease]
                                                ) -> None:
    events: list[str] = []
    a = LeaseKeeper(make_lease("a", 0.3), on_elected=lambda: events.append("elected"),
                    on_lost=lambda: events.append("lost")).start()
    b_lease = make_lease("b", 0.3)
    deadline = time.monotonic() + 2
    while not a.is_leader() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)  # >3 ttl: only renewals keep it
    assert a.is_leader() and not b_lease.try_acquire()
    a.stop()
    assert events == ["elected", "lost"] and not a.is_leader()
    assert b_lease.try_acquire()  # released: no wait for the ttl


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(ConfigError, match="ttl_s"):
        LocalLease("x", 0.0)
    with pytest.raises(ConfigError, match="lease_url"):
        open_lease("zk://x", "x", 1.0)
    assert isinstance(open_lease(None, "x", 1.0), LocalLease)


_HOLDER = textwrap.dedent("""
    import sys, time
    import redis
    from newsdesk.coordination import LeaseKeeper, RedisLease
    url, name, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    keeper = LeaseKeeper(RedisLease(url, name, ttl, "victim")).start()
    log = redis.Redis.from_url(url)
    while True:  # the leader's work: stamp the tenure log while (and only while) leader
        if keeper.is_leader():
            log.rpush(name + ":tenure", f"victim {time.time():.6f}")
        time.sleep(0.01)
""")


@pytest.mark.redis
def test_kill_the_leader_process_and_another_takes_over(redis_server: str) -> None:
    import redis

    name, ttl = f"kill-{uuid.uuid4().hex[:8]}", 1.0
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, redis_server, name, str(ttl)],
                            env=env)
    log = redis.Redis.from_url(redis_server)
    survivor = LeaseKeeper(RedisLease(redis_server, name, ttl, "survivor"))
    try:
        deadline = time.monotonic() + 30
        while log.llen(name + ":tenure") < 20:  # the subprocess is leading
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        survivor.start()
        time.sleep(1.5 * ttl)  # long enough that renewals must have happened
        assert not survivor.is_leader()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.time()
        while not survivor.is_leader():
            assert time.time() - killed_at < 3 * ttl, "no takeover"
            time.sleep(0.005)
        took = time.time() - killed_at
        log.rpush(name + ":tenure", f"survivor {time.time():.6f}")
        # within one ttl (+ one renewal period of polling, + scheduling slack on a busy box)
        assert took <= ttl + ttl / 3 + 0.3, took
        stamps = [s.decode().split() for s in log.lrange(name + ":tenure", 0, -1)]
        last_victim = max(float(t) for who, t in stamps if who == "victim")
        first_survivor = min(float(t) for who, t in stamps if who == "survivor")
        assert last_victim < killed_at <= first_survivor  # never two leaders at once
    finally:
        survivor.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.redis
def test_a_leader_cut_off_from_redis_stops_at_its_deadline(redis_process) -> None:  # noqa: ANN001
    """Redis dies: renewals fail with errors; the leader keeps trusting the lease only until
    its local deadline (before the key could expire for anyone else), then steps down."""
    lost: list[float] = []
    ttl = 0.6
    keeper = LeaseKeeper(RedisLease(redis_process.url, "cut", ttl, "a"),
                         on_lost=lambda: lost.append(time.monotonic())).start()
    try:
        deadline = time.monotonic() + 5
        while not keeper.is_leader() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert keeper.is_leader()
        redis_process.kill()
        killed = time.monotonic()
        while keeper.is_leader():
            assert time.monotonic() - killed < ttl + 0.5
            time.sleep(0.01)
        stepped_down = time.monotonic() - killed
        assert stepped_down <= ttl  # within one ttl of the last successful renewal
        deadline = time.monotonic() + 2
        while not lost and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lost  # the leader's work was told to stop
    finally:
        keeper.stop(release=False)
