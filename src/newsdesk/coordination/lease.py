"""A leader lease: at most one holder at a time, lost automatically when the holder dies.

A lease is a key with an owner and a time to live. The holder renews it every ttl/3; if it dies
(SIGKILL, a partition) the key expires and another process acquires it within one ttl.

Why the holder cannot outlive its lease: a holder trusts its leadership only until a LOCAL
deadline, ``t_sent + ttl * (1 - clock_margin)``, where ``t_sent`` is read *before* the
acquire/renew command is sent. The server's expiry starts after it receives the command, so the
local deadline always falls before the server lets anyone else in (up to the clock-rate drift
that `clock_margin` covers). A leader that cannot renew (Redis down, a long GC pause) stops
acting at its local deadline, before a successor can start. What a lease cannot prevent is an
action already in flight when the deadline passes; work that must never overlap checks
`LeaseKeeper.is_leader()` right before each write and keeps writes idempotent.

Backends: `RedisLease` (``SET key owner NX PX ttl`` to acquire; a Lua compare-and-pexpire to
renew and a compare-and-delete to release, so only the owner extends or frees it) for workers
and replicas sharing one Redis; `LocalLease` for a single embedded process (a process-wide
table; the same contract, tested by the same tests).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from newsdesk.errors import ConfigError, MissingDependency, StoreUnavailable
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.coordination.lease")


def default_owner() -> str:
    """A unique holder id: host, pid and a random suffix (a restarted pid is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease(ABC):
    """One named lease seen by one would-be holder (`owner`).

    Contract, for every backend:
    - `try_acquire()` -> True if this owner holds the lease afterwards (free, expired, or
      already ours: then it is renewed); never takes it from another live holder.
    - `renew()` -> True if it was still ours and now lives `ttl_s` longer; False if lost.
    - `release()` frees it only if it is ours (a no-op otherwise).
    - `holder()` -> the current owner id, or None when free.
    Raises StoreUnavailable when the backend cannot be reached (the keeper treats that as a
    failed renewal).
    """

    def __init__(self, name: str, ttl_s: float, owner: str | None = None) -> None:
        if not name:
            raise ConfigError("field 'name': a lease needs a name")
        if not (0.05 <= ttl_s <= 3600):
            raise ConfigError(f"field 'ttl_s': must be in [0.05, 3600] seconds, got {ttl_s}")
        self.name = name
        self.ttl_s = float(ttl_s)
        self.owner = owner or default_owner()

    @abstractmethod
    def try_acquire(self) -> bool: ...

    @abstractmethod
    def renew(self) -> bool: ...

    @abstractmethod
    def release(self) -> None: ...

    @abstractmethod
    def holder(self) -> str | None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources (not the lease)."""


class LocalLease(Lease):
    """In one process: a process-wide table name -> (owner, monotonic expiry)."""

    _table: ClassVar[dict[str, tuple[str, float]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def _live(self, now: float) -> tuple[str, float] | None:
        entry = self._table.get(self.name)
        if entry is None or entry[1] <= now:
            return None
        return entry

    def try_acquire(self) -> bool:
        with self._lock:
            now = time.monotonic()
            entry = self._live(now)
            if entry is not None and entry[0] != self.owner:
                return False
            self._table[self.name] = (self.owner, now + self.ttl_s)
            return True

    def renew(self) -> bool:
        with self._lock:
            now = time.monotonic()
            entry = self._live(now)
            if entry is None or entry[0] != self.owner:
                return False
            self._table[self.name] = (self.owner, now + self.ttl_s)
            return True

    def release(self) -> None:
        with self._lock:
            entry = self._table.get(self.name)
            if entry is not None and entry[0] == self.owner:
                del self._table[self.name]

    def holder(self) -> str | None:
        with self._lock:
            entry = self._live(time.monotonic())
            return None if entry is None else entry[0]


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease(Lease):
    """The lease as one Redis key ``{prefix}lease:{name}`` holding the owner id."""

    def __init__(self, url: str, name: str, ttl_s: float, owner: str | None = None, *,
                 prefix: str = "newsdesk:", socket_timeout_s: float | None = None) -> None:
        super().__init__(name, ttl_s, owner)
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the extra is part of make install
            raise MissingDependency("the Redis lease needs redis: pip install "
                                    "'newsdesk[redis]'") from exc
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # a command must not outlast the lease it is renewing
        timeout = socket_timeout_s if socket_timeout_s is not None else max(self.ttl_s / 3, 0.05)
        self._client: Any = redis.Redis.from_url(url, socket_timeout=timeout,
                                                 socket_connect_timeout=timeout)
        self.key = f"{prefix}lease:{name}"
        self._ttl_ms = max(int(self.ttl_s * 1000), 1)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._errors as exc:
            raise StoreUnavailable(f"lease '{self.name}': redis: {exc}") from exc

    def try_acquire(self) -> bool:
        if self._call(lambda: self._client.set(self.key, self.owner, nx=True, px=self._ttl_ms)):
            return True
        return self.renew()  # already ours (a re-acquire after a slow renewal)

    def renew(self) -> bool:
        return bool(self._call(lambda: self._renew(keys=[self.key],
                                                   args=[self.owner, self._ttl_ms])))

    def release(self) -> None:
        self._call(lambda: self._release(keys=[self.key], args=[self.owner]))

    def holder(self) -> str | None:
        value = self._call(lambda: self._client.get(self.key))
        return None if value is None else value.decode()

    def close(self) -> None:
        self._client.close()


def open_lease(url: str | None, name: str, ttl_s: float, owner: str | None = None) -> Lease:
    """``redis://...`` -> RedisLease; None or ``local://`` -> LocalLease."""
    if url is None or url.startswith("local://"):
        return LocalLease(name, ttl_s, owner)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLease(url, name, ttl_s, owner)
    raise ConfigError(f"field 'lease_url': unknown lease backend in {url!r} "
                      "(known: redis://, local://)")


class LeaseKeeper:
    """Acquires a lease and keeps it renewed on a daemon thread (see the module docstring).

    `is_leader()` is True only while the lease is held AND its local deadline has not passed.
    `on_elected()` / `on_lost()` run on the keeper thread when leadership starts or ends (a
    failed renewal, a backend error past the deadline, or `stop()`).
    """

    def __init__(self, lease: Lease, *, clock_margin: float = 0.1,
                 on_elected: Callable[[], None] | None = None,
                 on_lost: Callable[[], None] | None = None) -> None:
        if not (0.0 <= clock_margin < 0.5):
            raise ConfigError(f"field 'clock_margin': must be in [0, 0.5), got {clock_margin}")
        self.lease = lease
        self.clock_margin = clock_margin
        self.on_elected = on_elected
        self.on_lost = on_lost
        self._deadline = 0.0  # monotonic; leadership is trusted until then
        self._held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.terms = 0  # how many times this keeper became leader

    def is_leader(self) -> bool:
        return self._held and time.monotonic() < self._deadline

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.lease.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        """Stop renewing; release the lease so a successor need not wait for the ttl."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.lease.ttl_s, 1.0) + 1.0)
        if self._held:
            self._lose("stopped")
            if release:
                try:
                    self.lease.release()
                except StoreUnavailable as exc:
                    log.warning("lease_release_failed", lease=self.lease.name, error=str(exc))

    def tick(self) -> bool:
        """One acquire-or-renew step (the thread calls this every ttl/3); returns is_leader()."""
        sent = time.monotonic()
        try:
            ok = self.lease.renew() if self._held else self.lease.try_acquire()
        except StoreUnavailable as exc:
            log.warning("lease_unreachable", lease=self.lease.name, error=str(exc))
            ok = None  # unknown: keep trusting the lease until its local deadline
        if ok:
            self._deadline = sent + self.lease.ttl_s * (1.0 - self.clock_margin)
            if not self._held:
                self._held = True
                self.terms += 1
                log.info("lease_acquired", lease=self.lease.name, owner=self.lease.owner)
                if self.on_elected is not None:
                    self.on_elected()
        elif self._held and (ok is False or time.monotonic() >= self._deadline):
            self._lose("renewal failed" if ok is False else "deadline passed")
        return self.is_leader()

    def _lose(self, why: str) -> None:
        self._held = False
        self._deadline = 0.0
        log.warning("lease_lost", lease=self.lease.name, owner=self.lease.owner, why=why)
        if self.on_lost is not None:
            self.on_lost()

    def _run(self) -> None:
        period = self.lease.ttl_s / 3
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a callback bug must not end the keeper silently
                log.error("lease_keeper_error", lease=self.lease.name,
                          error=f"{type(exc).__name__}: {exc}")
            # wake early enough to drop leadership exactly at the deadline
            wait = period
            if self._held:
                wait = min(period, max(self._deadline - time.monotonic(), 0.0) + 0.001)
            self._stop.wait(wait)
