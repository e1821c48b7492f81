"""An in-process event log for tests and the demo: same contract, nothing survives the process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from newsdesk.data.eventlog.base import (
    KIND_OF,
    AppendResult,
    Event,
    EventLog,
    coerce_batch,
    event_key,
)
from newsdesk.errors import StoreUnavailable


class MemoryEventLog(EventLog):
    """A list of events plus a key set, guarded by a lock. "Durable" means: in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []  # seq = index + 1
        self._keys: set[tuple[str, str]] = set()
        self._closed = False

    def append(self, records: Iterable[Event | Mapping[str, Any]]) -> AppendResult:
        events = coerce_batch(records)
        accepted = 0
        with self._lock:
            if self._closed:
                raise StoreUnavailable("memory event log is closed")
            for event in events:
                key = (KIND_OF[type(event)], event_key(event))
                if key in self._keys:
                    continue
                self._keys.add(key)
                self._events.append(event)
                accepted += 1
        return AppendResult(accepted=accepted, duplicates=len(events) - accepted)

    def read(self, since_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, Event]]:
        with self._lock:  # a snapshot, so appends during iteration do not disturb it
            stop = len(self._events) if limit is None else min(len(self._events),
                                                               since_seq + limit)
            chunk = self._events[since_seq:stop]
        for offset, event in enumerate(chunk):
            yield since_seq + offset + 1, event

    def count(self) -> int:
        with self._lock:
            return len(self._events)

    def health(self) -> dict[str, Any]:
        return {"backend": "memory", "ok": not self._closed, "last_seq": self.count()}

    def close(self) -> None:
        with self._lock:
            self._closed = True
