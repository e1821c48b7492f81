"""The shared event log: one Redis Stream that every serving replica appends to.

    open_event_log("redis://127.0.0.1:6379/0")                # keys under "ndlog:"
    open_event_log("redis://host:6379/0?prefix=site-a:log:")  # another log on the same server

Keys (all under `prefix`, default "ndlog:", apart from the online store's "nd:" so that
`RedisOnlineStore.clear()` never wipes the log):

    {p}stream   the stream; entry id "0-<seq>", fields k (kind), key, p (the record as JSON)
    {p}keys     hash "<kind>:<key>" -> seq: every logged key, for de-duplication
    {p}seq      counter: the last seq handed out

Why explicit ids "0-<seq>" rather than Redis' time-based "*" ids: the contract's seq is an
integer that consumers resume from (SQLite's rowid); with "0-<seq>" the stream id *is* the seq,
dense and strictly increasing, with no lossy mapping from (ms, n) pairs. The event time lives in
the payload.

One batch is one Lua script (`_APPEND_LUA`): Redis runs it atomically, so a batch is
all-or-nothing and concurrent appends from several replicas never interleave inside a batch or
race on a key. The script starts with a `#!lua` shebang, which makes Redis (7.0+) refuse it up
front when the server is over `maxmemory` instead of failing half-way through the batch.

De-duplication is for the life of the log, like SQLite's UNIQUE(kind, key): the key hash holds
one small field per stored event next to that event's much larger stream entry, so it costs a
fraction of what the stream itself holds and would be trimmed together with it.

Durability: `append` returns once Redis has executed the script. The log survives any crash of a
serving replica (the test kills one with SIGKILL mid-load). Surviving a crash of Redis itself is
the server's persistence setting: `appendonly yes` + `appendfsync always` makes Redis fsync
before it answers (the SQLite FULL equivalent); `everysec` may lose up to a second.
`health()["aof"]` says whether the server has AOF on, so an operator can see which holds.

A timeout after the script ran leaves the client not knowing: `append` raises StoreUnavailable
(nothing acknowledged) and the client's retry of the same batch is answered with duplicates,
so a retry never stores an event twice.

Applying the stream to the online store (the consumer group, exactly once in effect) is
`newsdesk.serving.event_consumer`; this module only stores and reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newsdesk.data.eventlog.base import (
    KIND_OF,
    MODEL_OF,
    AppendResult,
    Event,
    EventLog,
    coerce_batch,
    event_key,
)
from newsdesk.deps import require
from newsdesk.errors import ConfigError, StoreUnavailable

DEFAULT_PREFIX = "ndlog:"
MIN_REDIS = (7, 0)

# KEYS: stream, key hash, seq counter. ARGV: (kind, key, payload) per record.
# Returns the seq of each record, 0 for a duplicate (of the log or of an earlier record here).
_APPEND_LUA = """#!lua
local out = {}
for i = 1, #ARGV, 3 do
  local field = ARGV[i] .. ':' .. ARGV[i + 1]
  if redis.call('HEXISTS', KEYS[2], field) == 1 then
    out[#out + 1] = 0
  else
    local seq = redis.call('INCR', KEYS[3])
    redis.call('XADD', KEYS[1], '0-' .. seq, 'k', ARGV[i], 'key', ARGV[i + 1], 'p', ARGV[i + 2])
    redis.call('HSET', KEYS[2], field, seq)
    out[#out + 1] = seq
  end
end
return out
"""


def stream_id(seq: int) -> str:
    """The stream entry id of a seq."""
    return f"0-{seq}"


def seq_of(entry_id: str | bytes) -> int:
    """The seq of a stream entry id "0-<seq>"."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[2])


def decode_entry(fields: Mapping[str, str]) -> Event:
    """The record of one stream entry (its `k` and `p` fields)."""
    return MODEL_OF[fields["k"]].model_validate_json(fields["p"])


def split_url(url: str) -> tuple[str, str]:
    """(redis url without our own query options, key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    rest = []
    for name, value in query:
        if name == "prefix":
            if not value:
                raise ConfigError(f"event log url {url!r}: field 'prefix' must not be empty")
            prefix = value
        else:
            rest.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


class RedisStreamEventLog(EventLog):
    """EventLog on a Redis Stream shared by several replicas (needs the [redis] extra).

    Args:
        url: redis://host:port/db, optionally with `?prefix=...` (the key prefix).
        prefix: overrides the url's prefix.
        socket_timeout_s: per-command timeout. Longer than the online store's 50 ms: an append
            is the acknowledgement of the client's data, so it waits rather than fails fast.
        page_size: entries fetched per XRANGE by `read`.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str | None = None,
                 socket_timeout_s: float = 5.0, connect_timeout_s: float = 1.0,
                 page_size: int = 1000) -> None:
        if page_size < 1:
            raise ConfigError(f"page_size must be >= 1, got {page_size}")
        redis = require("redis", "redis")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url, url_prefix = split_url(url)
        self.prefix = prefix if prefix is not None else url_prefix
        self.page_size = page_size
        self.stream_key = f"{self.prefix}stream"
        self.keys_key = f"{self.prefix}keys"
        self.seq_key = f"{self.prefix}seq"
        self._redis_error: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # retries off: a retried script could run twice on a timeout; the client retries
        # instead, and de-duplication makes that safe
        self.client = redis.Redis.from_url(
            self.url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, decode_responses=True,
        )
        self._append = self.client.register_script(_APPEND_LUA)
        self._closed = False
        self._close_lock = threading.Lock()
        with self._errors("connect"):
            version = str(self.client.info("server").get("redis_version", "0"))
        found = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if found < MIN_REDIS:
            raise ConfigError(f"event log url {self.url!r}: Redis {version} is too old; the "
                              f"stream event log needs Redis >= {'.'.join(map(str, MIN_REDIS))}")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._redis_error as exc:
            raise StoreUnavailable(f"redis event log {self.url}: {what} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------

    def append(self, records: Iterable[Event | Mapping[str, Any]]) -> AppendResult:
        return self.append_seqs(records)[0]

    def append_seqs(self, records: Iterable[Event | Mapping[str, Any]]
                    ) -> tuple[AppendResult, list[int]]:
        """`append`, also returning each record's seq, position by position (0: duplicate)."""
        events = coerce_batch(records)  # raises InvalidInput before anything is sent
        if self._closed:
            raise StoreUnavailable(f"redis event log {self.url} is closed")
        if not events:
            return AppendResult(accepted=0, duplicates=0), []
        args: list[str] = []
        for event in events:
            args += (KIND_OF[type(event)], event_key(event), event.model_dump_json())
        with self._errors("append"):
            out = self._append(keys=[self.stream_key, self.keys_key, self.seq_key], args=args)
        seqs = [int(s) for s in out]
        accepted = sum(1 for s in seqs if s > 0)
        return AppendResult(accepted=accepted, duplicates=len(events) - accepted), seqs

    # -- reading ---------------------------------------------------------------------------

    def read(self, since_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, Event]]:
        remaining = limit
        start = f"({stream_id(since_seq)}" if since_seq > 0 else "-"
        while remaining is None or remaining > 0:
            size = self.page_size if remaining is None else min(self.page_size, remaining)
            with self._errors("read"):
                entries = self.client.xrange(self.stream_key, min=start, max="+", count=size)
            if not entries:
                return
            for entry_id, fields in entries:
                yield seq_of(entry_id), decode_entry(fields)
            start = f"({entries[-1][0]}"
            if remaining is not None:
                remaining -= len(entries)

    def count(self) -> int:
        with self._errors("count"):
            return int(self.client.xlen(self.stream_key))

    def last_seq(self) -> int:
        """The highest seq handed out (0 when empty)."""
        with self._errors("last_seq"):
            return int(self.client.get(self.seq_key) or 0)

    def purge(self, *, before: float | None = None,
              users: frozenset[str] = frozenset()) -> int:
        """See EventLog.purge: one pass over the stream (XRANGE pages), XDEL of the matching
        entries and HDEL of their keys. Entries are in append order, not event time, so the
        whole stream is read."""
        deleted = 0
        start = "-"
        while True:
            with self._errors("purge"):
                entries = self.client.xrange(self.stream_key, min=start, max="+",
                                             count=self.page_size)
            if not entries:
                return deleted
            doomed, keys = [], []
            for entry_id, fields in entries:
                event = decode_entry(fields)
                if (event.user_id in users
                        or (before is not None and event.timestamp.timestamp() < before)):
                    doomed.append(entry_id)
                    keys.append(f"{fields['k']}:{fields['key']}")
            if doomed:
                with self._errors("purge"):
                    pipe = self.client.pipeline(transaction=True)
                    pipe.xdel(self.stream_key, *doomed)
                    pipe.hdel(self.keys_key, *keys)
                    pipe.execute()
                deleted += len(doomed)
            start = f"({entries[-1][0]}"

    # -- lifecycle -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        status: dict[str, Any] = {"backend": "redis-streams", "url": self.url,
                                  "stream": self.stream_key}
        try:
            started = time.perf_counter()
            with self._errors("health"):
                pipe = self.client.pipeline(transaction=False)
                pipe.get(self.seq_key)
                pipe.xlen(self.stream_key)
                pipe.info("persistence")
                seq, length, persistence = pipe.execute()
            status["last_seq"] = int(seq or 0)
            status["events"] = int(length)
            status["read_ms"] = round((time.perf_counter() - started) * 1000, 3)
            status["aof"] = bool(int(persistence.get("aof_enabled", 0)))
            status["ok"] = not self._closed
        except StoreUnavailable as exc:
            status.update(ok=False, error=str(exc))
        return status

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.client.close()
