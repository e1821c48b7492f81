"""`RecentKeys`: a bounded LRU map of event keys (thread-safe writes).

Used where an event must be recognised again for a while without keeping every key forever:
serving's applied-event de-duplication and request -> surface attribution, and the online
quality monitor's slate and click memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class RecentKeys:
    """The newest `capacity` keys with a value each; the oldest is forgotten first."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, value: Any = True) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data
