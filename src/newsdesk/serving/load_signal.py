"""How busy the recommend path is, so that background work in the same process can yield to it.

    signal = LoadSignal(lambda: pipeline.stage_seconds, threshold=0.25)
    signal.busy()   # True while the path spent more than 0.25 s per second in its stages

The LLM enrichment worker (llm/enrich_queue.py) runs a small model on the CPU for seconds per
article; on a box that also serves, every second it computes is a second the request path
waits for a core. It asks `busy()` before each article and waits while the path is busy: the
model works in the idle time, the queue keeps the backlog (its depth is a metric) and
`newsdesk enrich` or a provider off the box catches up. The measure is the path's own stage
time per wall second (seconds of work per second, ~ cores it needs), which does not depend on
the machine's speed the way a request rate would.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoadSignal:
    """busy(): the rate of a cumulative seconds counter over the last `window_s` > threshold."""

    def __init__(self, seconds: Callable[[], float], threshold: float,
                 window_s: float = 2.0, min_span_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.threshold = threshold
        self.window_s = window_s
        self.min_span_s = min_span_s
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()
        self.last_rate: float | None = None  # the latest rate() (status pages)

    def rate(self) -> float | None:
        """Seconds of stage work per wall second since the oldest sample of the window; None
        while the samples span less than `min_span_s` (too short to say)."""
        now, total = self.clock(), self.seconds()
        with self._lock:
            self._samples.append((now, total))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
                self._samples.popleft()
            t0, s0 = self._samples[0]
        if now - t0 < self.min_span_s:
            return None
        self.last_rate = (total - s0) / (now - t0)
        return self.last_rate

    def busy(self) -> bool:
        """True while the path is busier than the threshold, and while it cannot tell yet (the
        caller asks again a moment later); never with a threshold of 0 (yielding off)."""
        if self.threshold <= 0:
            return False
        rate = self.rate()
        return rate is None or rate > self.threshold
