"""Keeps the online state whole: rebuilt from the dataset and the durable event log when lost.

The event log is the durable truth (an acknowledged event is in it); the online store is a
fast copy that can be lost in two ways:

* the embedded store's process was killed (SIGKILL, power loss): its snapshot file is older
  than the log, and the store says so (`MemoryOnlineStore.unclean`, a flag in the snapshot
  file that only `close()` clears);
* a Redis store came back empty (restarted without persistence, flushed).

The store carries a sentinel marker (`online-state`), written once it holds the dataset and
every logged event. At start, a store that is unclean (then cleared) or has no sentinel is
rebuilt: the dataset's bootstrap (which skips events the log holds) plus a replay of the whole
log up to its last seq at that moment; later events are applied live as usual, so none is
counted twice. While serving, a thread checks the sentinel every `watch_s` seconds, and at
once when the breaker's probe sees the store answer again after an outage (`wake`): a store
that lost it (Redis restarted empty) is rebuilt the same way without restarting the service.
The replay merges each chunk of logged events like the dataset (`merge_logged_events`: a few
bulk calls instead of three commands per click), since the state is not whole until it ends.
Several processes sharing one store rebuild it once (a lock marker, like the bootstrap's).

The same thread samples the dependencies for the metrics (`newsdesk_dependency_up`): the
online store's ping and the event log's health, so a fault shows in /metrics even when no
request touches the broken part. The ping's round trip is a gauge too
(`newsdesk_dependency_roundtrip_seconds`), and a store whose median of the last three round
trips exceeds `slow_store_s` is reported `slow` (on /readyz, still ready): a request makes
several store calls, so a store that answers but slowly degrades answers without ever being
down, and nothing else would say why.

Events logged while the store's circuit was open were certainly not applied: the ingestor
hands them over (`defer`) and the watcher applies them once the store answers again (at most
MAX_DEFERRED kept; more are counted as dropped). Known limits: events applied live to a store
that came back empty, in the moments before the watcher sees the missing sentinel (at most
`watch_s`), are counted again by the replay; events whose apply timed out (the store may or
may not have applied them) are not retried.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from newsdesk.errors import StoreUnavailable
from newsdesk.features.bootstrap import merge_logged_events
from newsdesk.features.online_store import OnlineStore
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.heap import loading_state

log = get_logger("newsdesk.serving.state_keeper")

SENTINEL = "online-state"
LOCK = "online-state-rebuild"
STALE_LOCK_S = 300.0
REPLAY_CHUNK = 2000
MAX_DEFERRED = 200_000  # events kept for a later apply while the store is down


def last_seq(event_log: Any) -> int:
    """The log's highest seq now (0 for an empty log or none)."""
    if event_log is None:
        return 0
    fn = getattr(event_log, "last_seq", None)
    if fn is not None:
        return int(fn())
    seq = 0
    for logged, _ in event_log.read(0):
        seq = logged
    return seq


def replay_log(store: OnlineStore, event_log: Any, upto_seq: int,
               erased: frozenset[str] = frozenset()) -> int:
    """Apply every logged event with seq <= upto_seq to the store, except those of `erased`
    readers (the right to erasure outlives a rebuild); returns how many were read."""
    if event_log is None or upto_seq <= 0:
        return 0
    n = 0
    chunk: list[Any] = []
    for seq, event in event_log.read(0):
        if seq > upto_seq:
            break
        if getattr(event, "user_id", None) not in erased:
            chunk.append(event)
        n += 1
        if len(chunk) >= REPLAY_CHUNK:
            _apply(store, chunk)
            chunk = []
    if chunk:
        _apply(store, chunk)
    return n


def _apply(store: OnlineStore, events: list[Any]) -> None:
    # merged like the dataset (features/bootstrap.py): a few bulk calls per chunk instead
    # of three commands per click -- the replay is most of a rebuild, and the state is not
    # whole until it ends (measured on 4,000 logged events: 0.12 s instead of 0.65 s) -- and
    # on Redis through the bulk client, whose long timeouts suit a chunk off the request path
    merge_logged_events(store, events)


class OnlineStateKeeper:
    """The start-up check, the rebuilds and the watcher (see the module docstring).

    Args:
        store: the raw online store (not the breaker's wrapper: rebuilds run off the
            request path and must not trip the breaker).
        event_log: the service's event log.
        dataset_dir: the dataset the bootstrap loads (None: only the log is replayed).
        registry: where the metrics go.
        watch_s: how often the sentinel and the dependencies are checked.
        slow_store_s: a store whose recent ping round trips (median of three) take longer
            is reported slow (`slow`).
    """

    def __init__(self, store: OnlineStore, event_log: Any, dataset_dir: Path | None, *,
                 registry: CollectorRegistry | None = None, watch_s: float = 0.5,
                 slow_store_s: float = 0.01,
                 erased: Callable[[], frozenset[str]] | None = None) -> None:
        self.store, self.event_log, self.dataset_dir = store, event_log, dataset_dir
        self.erased = erased or frozenset  # erased readers: left out of a replay
        self.watch_s = watch_s
        self.state = "ok"
        self.rebuilds = 0
        self.last: dict[str, Any] | None = None
        self._pending: tuple[str, int] | None = None  # (reason, upto_seq) decided at start
        # logged events the store certainly did not apply (its circuit was open): applied
        # once it answers again (`defer`); a rebuild covers them (it replays the log)
        self._deferred: deque[Any] = deque()
        self._deferred_lock = threading.Lock()
        self.deferred_applied = 0
        self.deferred_dropped = 0
        self._stop = threading.Event()
        self._wake = threading.Event()  # `wake`: look now, not at the next round
        self._thread: threading.Thread | None = None
        self.rebuild_count = Counter(
            "newsdesk_online_state_rebuilds", "Online state rebuilt from dataset + event log",
            ["reason"], registry=registry)
        self.dependency_up = Gauge(
            "newsdesk_dependency_up", "1 when the dependency answers, 0 when it is down",
            ["dependency"], registry=registry)
        self.roundtrip = Gauge(
            "newsdesk_dependency_roundtrip_seconds",
            "The last health ping's round trip to the dependency (while it answers)",
            ["dependency"], registry=registry)
        self.slow_store_s = slow_store_s
        self._roundtrips: deque[float] = deque(maxlen=3)

    # -- start -----------------------------------------------------------------------------
    def prepare(self) -> str | None:
        """Decide at start whether the store must be rebuilt (before any request): clears a
        stale embedded store and fixes the log seq the replay stops at. Returns the reason."""
        reason = None
        if getattr(self.store, "unclean", False):
            reason = "unclean_shutdown"
            self.store.clear()  # type: ignore[attr-defined]
        else:
            try:
                if self._sentinel() is None:
                    reason = "no_sentinel"
            except StoreUnavailable:  # down at start: the watcher looks again once it is up
                return None
        if reason is not None:
            upto = last_seq(self.event_log)
            if upto == 0:  # nothing logged: the dataset's bootstrap job is the whole rebuild
                self.store.write_marker(SENTINEL, json.dumps(
                    {"rebuilt_at": time.time(), "reason": reason, "log_seq": 0}))
                return reason
            self._pending = (reason, upto)
            self.state = "rebuilding"
        return reason

    def start(self, bootstrap: Any = None) -> None:
        """The watcher thread; a rebuild decided by `prepare` runs first, after `bootstrap`
        (the StoreBootstrapJob, which loads the dataset) is finished."""
        self._thread = threading.Thread(target=self._run, args=(bootstrap,),
                                        name="online-state-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def defer(self, events: list[Any]) -> None:
        """Events the store did not apply (EventIngestor.not_applied); bounded."""
        with self._deferred_lock:
            room = MAX_DEFERRED - len(self._deferred)
            self._deferred.extend(events[:max(0, room)])
            self.deferred_dropped += max(0, len(events) - max(0, room))

    def _apply_deferred(self) -> None:
        while True:
            with self._deferred_lock:
                chunk = [self._deferred.popleft()
                         for _ in range(min(REPLAY_CHUNK, len(self._deferred)))]
            if not chunk:
                return
            try:
                _apply(self.store, chunk)
            except Exception as exc:  # not applied (refused or unknown): keep for later
                with self._deferred_lock:
                    self._deferred.extendleft(reversed(chunk))
                log.warning("deferred_events_not_applied", error=f"{type(exc).__name__}: "
                            f"{exc}", pending=len(self._deferred))
                return
            self.deferred_applied += len(chunk)

    # -- the thread ------------------------------------------------------------------------
    def _run(self, bootstrap: Any) -> None:
        if self._pending is not None:
            if bootstrap is not None:
                while not bootstrap.finished.wait(0.2):
                    if self._stop.is_set():
                        return
            reason, upto = self._pending
            self._pending = None
            self._rebuild(reason, upto, with_dataset=False)  # the job loaded the dataset
        while not self._pause():
            self._sample()
            try:
                missing = self._sentinel() is None
            except StoreUnavailable:
                continue  # down, not empty: the breaker and /readyz report it
            if missing:
                with self._deferred_lock:  # every deferred event is in the log the replay
                    self._deferred.clear()  # reads (acknowledged = logged first)
                self._rebuild("store_emptied", last_seq(self.event_log), with_dataset=True)
            elif self._deferred and self.store.ping():
                self._apply_deferred()

    def wake(self) -> None:
        """Check the store now (the breaker's probe calls this when the store answers again:
        a Redis back EMPTY is then seen at once, not up to `watch_s` later, while requests
        already read its empty state)."""
        self._wake.set()

    def _pause(self) -> bool:
        """Wait for the next round (`watch_s`, or sooner on `wake`); True when stopping."""
        self._wake.wait(self.watch_s)
        self._wake.clear()
        return self._stop.is_set()

    def _sentinel(self) -> str | None:
        try:
            return self.store.read_marker(SENTINEL)
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _sample(self) -> None:
        started = time.perf_counter()
        try:
            store_ok = bool(self.store.ping())
        except Exception:  # ping must never raise; be safe anyway
            store_ok = False
        self.dependency_up.labels("online_store").set(1.0 if store_ok else 0.0)
        if store_ok:
            took = time.perf_counter() - started
            self._roundtrips.append(took)
            self.roundtrip.labels("online_store").set(took)
        else:
            self._roundtrips.clear()  # down is reported as down, not as slow
        if self.event_log is not None:
            log_ok = bool(self.event_log.health().get("ok", False))
            self.dependency_up.labels("event_log").set(1.0 if log_ok else 0.0)

    def _rebuild(self, reason: str, upto: int, *, with_dataset: bool) -> None:
        started = time.perf_counter()
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                         "since": time.time()})
        self.state = "rebuilding"
        # off the request path: patient timeouts (OnlineStore.patient), so that one late reply
        # on a loaded machine does not throw the rebuild away and start it again
        store = self.store.patient()
        try:
            if not store.claim_marker(LOCK, me):
                holder = json.loads(store.read_marker(LOCK) or "{}")
                mine = (holder.get("host"), holder.get("pid")) == (socket.gethostname(),
                                                                   os.getpid())
                # a lock of this process is an orphan (this thread is its only rebuilder: a
                # claim whose reply came too late, a rebuild that failed before unlocking)
                if not mine and time.time() - float(holder.get("since", 0.0)) < STALE_LOCK_S:
                    if self.state != "rebuilding_elsewhere":
                        log.warning("online_state_rebuild_elsewhere", reason=reason,
                                    holder=holder)
                    self.state = "rebuilding_elsewhere"  # another process does it
                    return
                store.write_marker(LOCK, me)
            log.warning("online_state_rebuild_started", reason=reason, log_seq=upto)
            try:
                loaded = None
                with loading_state():  # no collector pauses over the growing state (heap.py)
                    if with_dataset and self.dataset_dir is not None:
                        from newsdesk.features.bootstrap import bootstrap_store

                        loaded = bootstrap_store(store, self.dataset_dir,
                                                 event_log=self.event_log).to_dict()["users"]
                    replayed = replay_log(store, self.event_log, upto, self.erased())
                store.write_marker(SENTINEL, json.dumps(
                    {"rebuilt_at": time.time(), "reason": reason, "log_seq": upto}))
            finally:
                store.delete_marker(LOCK)
        except Exception as exc:  # keep serving; the next watch round tries again
            self.state = "rebuild_failed"
            self.last = {"reason": reason, "error": f"{type(exc).__name__}: {exc}"}
            log.error("online_state_rebuild_failed", reason=reason, error=self.last["error"])
            return
        self.rebuilds += 1
        self.rebuild_count.labels(reason).inc()
        self.state = "ok"
        self.last = {"reason": reason, "replayed_events": replayed, "dataset_users": loaded,
                     "seconds": round(time.perf_counter() - started, 3), "log_seq": upto}
        log.warning("online_state_rebuilt", **self.last)

    # -- status ----------------------------------------------------------------------------
    @property
    def rebuilding(self) -> bool:
        return self.state == "rebuilding"

    @property
    def slow(self) -> dict[str, float]:
        """{"online_store_ms": median round trip} while the store answers slower than
        `slow_store_s` (median of the last three pings), else empty."""
        if len(self._roundtrips) < self._roundtrips.maxlen:  # type: ignore[operator]
            return {}
        median = sorted(self._roundtrips)[1]
        return {"online_store_ms": round(median * 1000, 1)} if median > self.slow_store_s else {}

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "rebuilds": self.rebuilds,
                               "deferred_pending": len(self._deferred),
                               "deferred_applied": self.deferred_applied,
                               "deferred_dropped": self.deferred_dropped}
        if self.last is not None:
            out["last"] = self.last
        return out
