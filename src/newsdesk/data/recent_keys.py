"""`RecentKeys`: a bounded LRU map of event keys (thread-safe writes).

Used where an event must be recognised again for a while without keeping every key forever:
serving's applied-event de-duplication and request -> surface attribution, and the online
quality monitor's slate and click memory.

Bounded two ways: at most `capacity` keys, and (with `max_age_s`) none older than that. The
count alone let a long-running server's memory climb for as long as it took to fill the map
(100k slates of ~20 ids: ~100 MB, half an hour at 50 req/s: the soak benchmark read that as
growth); the age bound makes the memory plateau after `max_age_s` at any traffic, and says
what the map is for: a click or a retried batch arrives minutes after its slate, not hours.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class RecentKeys:
    """The newest `capacity` keys (none older than `max_age_s` when set) with a value each;
    the oldest is forgotten first."""

    def __init__(self, capacity: int = 200_000, *, max_age_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.max_age_s = max_age_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, value: Any = True) -> None:
        now = self._clock() if self.max_age_s is not None else 0.0
        with self._lock:
            data = self._data
            data[key] = (value, now)
            data.move_to_end(key)
            if len(data) > self.capacity:
                data.popitem(last=False)
            if self.max_age_s is not None:
                oldest = now - self.max_age_s
                while data and next(iter(data.values()))[1] < oldest:
                    data.popitem(last=False)

    def get(self, key: str) -> Any:
        entry = self._data.get(key)
        return None if entry is None else entry[0]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)
