"""Applies the shared event log (a Redis Stream) to the shared online store, once per event.

With `--event-log redis://...` and `--redis-url redis://...` on the same server, every replica
runs one `StreamApplier`, a consumer in the group "appliers" of the log's stream:

    POST /v1/events (replica A)                        replicas A, B, ... (one consumer each)
      │ append: one Lua script, XADD + dedup by key      │ XREADGROUP (own pending first, then new)
      ▼                                                  ▼
    stream "ndlog:stream" ─────────────────────────> apply to the store + XACK, one MULTI/EXEC
      │                                                  │
      └── A answers once the batch is applied <──────────┘  (whichever consumer took it)

Who applies: only the consumers. The ingestor that received a batch does not apply it inline;
it appends it (the acknowledgement is the XADD), then waits, bounded by `apply_wait_s`, until
the group has applied it, and answers `applied: true` (or `false` if the wait ran out; the
consumers still apply it later). Why: an inline apply and the consumer would each apply the
same event unless they coordinated per event; with one writer there is one code path for the
replica that received the event, for the other replicas, and for the replay after a crash, and
read-your-writes on the receiving replica holds anyway because the API answers after the apply.
Another replica's next request sees the event as soon as it is applied (milliseconds: every
consumer blocks in XREADGROUP and wakes on the XADD), well inside the 1 s target.

Applied once (at least once delivery, applied once in effect):

* the store's commands for a batch and the XACK of its entries run in one MULTI/EXEC, so an
  entry is either applied and acknowledged, or neither: a consumer killed at any point leaves
  its entries pending and unapplied. So "applied" is exactly "delivered and no longer pending",
  which is what `is_applied` checks;
* a dead consumer's pending entries are taken over by a live one after `claim_idle_s` without
  progress (XAUTOCLAIM). A consumer that was only slow, not dead, may still be holding the
  entries it lost. So the claim runs in a Lua script that also bumps a fence counter when it
  took anything, and every consumer reads the fence before it reads entries and WATCHes it
  around its transaction: the slow consumer's EXEC is aborted instead of applying the entries a
  second time. Claims are rare (a replica died), so aborting every in-flight batch then is
  cheap, and no per-event "applied" marker has to be stored;
* each consumer has a unique name (host, pid and a random suffix): two live consumers sharing a
  name would share a pending list and could both apply it.

If the online store is on another Redis server (or database), one transaction cannot span
both: the applier then applies, then acknowledges (at least once in effect; a crash between
the two applies that batch again), and says so in `health()["mode"]`. With an in-process online
store (no --redis-url) there is no shared state to apply to: `start_event_consumer` returns
None and each replica applies the events it receives inline, as with the SQLite log.

Alive: `health()` (alive, lag, pending, last error); /readyz lists it as the check
`event_consumer`; counters `newsdesk_events_total{type="stream",outcome="consumer_*"}`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager, suppress
from typing import Any

from newsdesk.data.eventlog import AppendResult, Event, EventLog
from newsdesk.data.eventlog.redis_streams import (
    RedisStreamEventLog,
    decode_entry,
    seq_of,
    stream_id,
)
from newsdesk.errors import ConfigError, StoreUnavailable
from newsdesk.features.dismissals import apply_dismissals
from newsdesk.features.online_store import OnlineStore
from newsdesk.monitoring.logging import get_logger
from newsdesk.monitoring.metrics import ServingMetrics

log = get_logger("newsdesk.serving.event_consumer")

# KEYS: stream, fence. ARGV: group, consumer, min_idle_ms, count, max_rounds.
# Takes over entries idle for min_idle_ms; bumps the fence when it took any (see docstring).
_CLAIM_LUA = """#!lua
local cursor, taken = '0-0', 0
for _ = 1, tonumber(ARGV[5]) do
  local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor,
                         'COUNT', ARGV[4], 'JUSTID')
  taken = taken + #res[2]
  cursor = res[1]
  if cursor == '0-0' then break end
end
if taken > 0 then redis.call('INCR', KEYS[2]) end
return taken
"""

# KEYS: stream. ARGV: group, me, min_idle_ms. Deletes consumers with nothing pending that
# have been idle that long (replicas that restarted under a new name). Check and delete in one
# script: a consumer must never be deleted while it holds entries (they would be lost from the
# group); a live one deleted here is re-created by its next XREADGROUP.
_REAP_LUA = """#!lua
local gone = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['name'] ~= ARGV[2] and tonumber(info['pending']) == 0
     and tonumber(info['idle']) >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    gone = gone + 1
  end
end
return gone
"""

EXACTLY_ONCE = "exactly_once"
AT_LEAST_ONCE = "at_least_once"


def consumer_name() -> str:
    """Unique among live consumers: host, pid, and a random suffix (pids repeat in containers)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class StreamApplier:
    """One consumer of the group: reads the log's stream and applies it to the online store.

    Args:
        event_log: the shared log.
        store: the online store to apply to (a `RedisOnlineStore` on the log's server gives
            exactly-once effect; any other store gets at-least-once, see the module docstring).
        group: consumer group name; every replica of one deployment uses the same.
        batch: entries read (and applied in one transaction) at a time.
        block_ms: how long one XREADGROUP waits for new entries (also bounds `stop()`).
        claim_idle_s: pending entries idle this long are taken from their (dead) consumer.
        claim_every_s: how often to look for such entries.
        start_id: where a newly created group starts: "0" replays the whole log into the store
            (the store is a fold of the log), "$" applies only events appended from now on.
    """

    def __init__(self, event_log: RedisStreamEventLog, store: OnlineStore, *,
                 group: str = "appliers", consumer: str | None = None, batch: int = 500,
                 block_ms: int = 200, claim_idle_s: float = 5.0, claim_every_s: float = 1.0,
                 start_id: str = "0", metrics: ServingMetrics | None = None) -> None:
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, got {batch}")
        if not 1 <= block_ms < event_log_timeout_ms(event_log):
            raise ConfigError(f"block_ms must be in [1, the log's socket timeout), got "
                              f"{block_ms}")
        if claim_idle_s <= 0:
            raise ConfigError(f"claim_idle_s must be > 0, got {claim_idle_s}")
        self.log = event_log
        self.store = store
        self.group = group
        self.consumer = consumer or consumer_name()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_s = claim_idle_s
        self.claim_every_s = claim_every_s
        self.start_id = start_id
        self.metrics = metrics
        self.client = event_log.client
        self.stream = event_log.stream_key
        self.fence_key = f"{event_log.prefix}fence:{group}"
        self.applied_key = f"{event_log.prefix}applied:{group}"
        same = getattr(store, "same_server", None)
        self.mode = EXACTLY_ONCE if callable(same) and same(self.client) else AT_LEAST_ONCE
        self._claim = self.client.register_script(_CLAIM_LUA)
        self._reap = self.client.register_script(_REAP_LUA)
        self.reap_idle_s = 3600.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied = 0  # events applied by this consumer
        self.claimed = 0
        self.aborted = 0  # transactions aborted by the fence
        self.last_applied_seq = 0
        self.last_error: str | None = None
        self.last_progress = time.monotonic()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        with self.log._errors(f"consumer {what}"):
            yield

    # -- the steps (public so tests can drive a consumer one step at a time) ---------------

    def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists."""
        from redis.exceptions import ResponseError

        try:
            with self._errors("create group"):
                self.client.xgroup_create(self.stream, self.group, id=self.start_id,
                                          mkstream=True)
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, ResponseError) or "BUSYGROUP" not in str(exc):
                raise

    def claim(self) -> int:
        """Take over entries idle longer than `claim_idle_s`; returns how many."""
        with self._errors("claim"):
            taken = int(self._claim(keys=[self.stream, self.fence_key],
                                    args=[self.group, self.consumer,
                                          int(self.claim_idle_s * 1000), 1000, 10]))
        if taken:
            self.claimed += taken
            log.info("event_consumer_claimed", consumer=self.consumer, entries=taken)
            self._count("consumer_claimed", taken)
        return taken

    def reap(self, idle_s: float | None = None) -> int:
        """Delete consumers with nothing pending, idle `idle_s` (default an hour); returns how
        many (the names of replicas that restarted accumulate otherwise)."""
        idle_ms = int(1000 * (self.reap_idle_s if idle_s is None else idle_s))
        with self._errors("reap"):
            return int(self._reap(keys=[self.stream], args=[self.group, self.consumer,
                                                             idle_ms]))

    def fence(self) -> str | None:
        """The fence value to hold while reading (see the module docstring)."""
        with self._errors("fence"):
            return self.client.get(self.fence_key)

    def read(self, *, block: bool = True) -> list[tuple[str, dict[str, str] | None]]:
        """This consumer's own pending entries first (a retry), else new ones (blocking up to
        `block_ms`). Entries trimmed from the stream come back with fields None."""
        with self._errors("read"):
            own = self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"},
                                         count=self.batch)
            entries = own[0][1] if own else []
            if not entries:
                new = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                             count=self.batch,
                                             block=self.block_ms if block else None)
                entries = new[0][1] if new else []
        return [(entry_id, fields or None) for entry_id, fields in entries]

    def apply(self, entries: Sequence[tuple[str, dict[str, str] | None]],
              fence: str | None) -> bool:
        """Apply the entries and acknowledge them together; False (nothing done) when the
        fence moved since `fence` was read, i.e. another consumer may have taken them."""
        if not entries:
            return True
        from redis.exceptions import WatchError

        ids = [entry_id for entry_id, _ in entries]
        events = self._decode(entries)
        if self.mode == AT_LEAST_ONCE:
            if self.fence() != fence:
                self.aborted += 1
                return False
            self.store.record_events(events)
            with self._errors("ack"):
                pipe = self.client.pipeline(transaction=True)
                pipe.xack(self.stream, self.group, *ids)
                pipe.incrby(self.applied_key, len(events))
                pipe.execute()
        else:
            # dismissals are markers (read-modify-write, not in the MULTI): applied before the
            # ack, so a crash in between re-delivers them, and re-applying is idempotent
            with self._errors("dismissals"):
                apply_dismissals(self.store, events)
            try:
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.watch(self.fence_key)
                    if pipe.get(self.fence_key) != fence:
                        raise WatchError("fence moved before the transaction")
                    pipe.multi()
                    self.store.queue_events(pipe, events)  # type: ignore[attr-defined]
                    pipe.xack(self.stream, self.group, *ids)
                    pipe.incrby(self.applied_key, len(events))
                    pipe.execute()
            except WatchError:  # before the generic handler: WatchError is a RedisError
                self.aborted += 1
                log.info("event_consumer_fenced", consumer=self.consumer, entries=len(ids))
                return False
            except self.log._redis_error as exc:
                raise StoreUnavailable(f"redis event log {self.log.url}: consumer apply "
                                       f"failed: {type(exc).__name__}: {exc}") from exc
        self.applied += len(events)
        self.last_applied_seq = max(self.last_applied_seq, *(seq_of(i) for i in ids))
        self.last_progress = time.monotonic()
        self._count("consumer_applied", len(events))
        return True

    def _decode(self, entries: Sequence[tuple[str, dict[str, str] | None]]) -> list[Event]:
        events = []
        for entry_id, fields in entries:
            if fields is None:  # trimmed from the stream: nothing left to apply
                continue
            try:
                events.append(decode_entry(fields))
            except Exception as exc:  # never block the group on one bad entry: ack, count
                log.error("event_consumer_bad_entry", id=entry_id,
                          error=f"{type(exc).__name__}: {exc}")
                self._count("consumer_skipped", 1)
        return events

    def poll_once(self, *, block: bool = True) -> int:
        """One round: read the fence, read entries, apply them. Returns entries handled."""
        fence = self.fence()
        entries = self.read(block=block)
        if not entries:
            self.last_progress = time.monotonic()
            return 0
        return len(entries) if self.apply(entries, fence) else 0

    # -- waiting for a batch (the ingestor) -------------------------------------------------

    def is_applied(self, seqs: Sequence[int]) -> bool:
        """True once the group has applied every seq: delivered, and none still pending.
        Seqs <= 0 (duplicates in `append`'s answer) are ignored."""
        seqs = [s for s in seqs if s > 0]
        if not seqs:
            return True
        lo, hi = min(seqs), max(seqs)
        with self._errors("is_applied"):
            pipe = self.client.pipeline(transaction=False)
            pipe.xinfo_groups(self.stream)
            pipe.xpending_range(self.stream, self.group, min=stream_id(lo),
                                max=stream_id(hi), count=1)
            groups, pending = pipe.execute()
        delivered = next((g["last-delivered-id"] for g in groups if g["name"] == self.group),
                         None)
        return delivered is not None and seq_of(delivered) >= hi and not pending

    def append(self, events: list[Event]) -> tuple[AppendResult, list[int]]:
        """Append to the shared log (the acknowledgement); returns each record's seq, 0 for a
        duplicate."""
        return self.log.append_seqs(events)

    async def wait_applied(self, seqs: Sequence[int], executor: Executor, *,
                           timeout_s: float = 1.0, poll_s: float = 0.002) -> bool:
        """Wait (without holding a thread) until `is_applied(seqs)`, at most `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout_s
        while True:
            if await loop.run_in_executor(executor, self.is_applied, seqs):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll_s)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> StreamApplier:
        """Create the group if needed and start the consumer thread."""
        self.ensure_group()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="event-consumer", daemon=True)
        self._thread.start()
        log.info("event_consumer_started", consumer=self.consumer, group=self.group,
                 mode=self.mode)
        return self

    def _run(self) -> None:
        next_claim = next_reap = 0.0
        backoff = 0.05
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_claim:
                    self.claim()
                    next_claim = time.monotonic() + self.claim_every_s
                if time.monotonic() >= next_reap:
                    self.reap()
                    next_reap = time.monotonic() + 60.0
                self.poll_once()
                self.last_error = None
                backoff = 0.05
            except Exception as exc:  # the store or Redis is down: retry, never die
                self.last_error = f"{type(exc).__name__}: {exc}"
                if "NOGROUP" in str(exc):  # the stream or group was deleted: start over
                    with suppress(StoreUnavailable):
                        self.ensure_group()
                log.warning("event_consumer_error", consumer=self.consumer,
                            error=self.last_error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the current round (at most `block_ms` of waiting). Entries read but not
        applied stay pending and are taken over by another consumer after `claim_idle_s`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> dict[str, Any]:
        """alive, mode, counts and the group's lag; `ok` is alive and no error. Never raises."""
        status: dict[str, Any] = {
            "consumer": self.consumer, "group": self.group, "mode": self.mode,
            "alive": self.alive, "applied": self.applied, "claimed": self.claimed,
            "aborted": self.aborted, "last_applied_seq": self.last_applied_seq,
            "last_error": self.last_error,
        }
        try:
            with self._errors("health"):
                groups = self.client.xinfo_groups(self.stream)
            info = next((g for g in groups if g["name"] == self.group), None)
            if info is not None:
                status["pending"] = int(info["pending"])
                status["lag"] = info.get("lag")
        except StoreUnavailable as exc:
            status["last_error"] = str(exc)
        status["ok"] = bool(status["alive"] and status["last_error"] is None)
        return status

    def _count(self, outcome: str, n: int) -> None:
        if self.metrics is not None:
            self.metrics.events.labels("stream", outcome).inc(n)


def event_log_timeout_ms(event_log: RedisStreamEventLog) -> float:
    timeout = event_log.client.connection_pool.connection_kwargs.get("socket_timeout")
    return float("inf") if timeout is None else float(timeout) * 1000


def start_event_consumer(event_log: EventLog, store: OnlineStore, *,
                         metrics: ServingMetrics | None = None,
                         claim_idle_s: float = 5.0) -> StreamApplier | None:
    """The running consumer when the log is a Redis Stream and the store is Redis; else None
    (the ingestor then applies inline, see the module docstring)."""
    if not isinstance(event_log, RedisStreamEventLog):
        return None
    raw = getattr(store, "inner", store)  # unwrap the circuit breaker's GuardedOnlineStore
    if not hasattr(raw, "queue_events"):
        log.warning("event_consumer_off", reason="the online store is in-process: events "
                    "reach the replica that receives them only; use --redis-url to share")
        return None
    return StreamApplier(event_log, raw, metrics=metrics, claim_idle_s=claim_idle_s).start()
