"""An optional per-stage timing hook of the personalised model call.

`NewsRecommender.recommend` takes a few `time.perf_counter` readings at its stage boundaries
(candidates -> features -> score -> rerank) and hands them to its `stage_timer` when one is
set; with none set it only pays for the readings (well under a microsecond a request). The
micro-benchmark `benchmarks/recommend_path.py` sets a `StageTotals` to report where the model
call spends its time; a server could forward the same readings to its metrics.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

STAGES: tuple[str, ...] = ("candidates", "features", "score", "rerank")


class StageTimer(ABC):
    """Receives the duration of each stage of one `recommend` call.

    `record` is called from whatever thread runs the model, once per stage per call, in
    STAGES order; it must be cheap and must not raise.
    """

    @abstractmethod
    def record(self, stage: str, seconds: float) -> None:
        """One stage of one call took `seconds` (wall clock, perf_counter)."""


class StageTotals(StageTimer):
    """Keeps every reading per stage (in seconds), for benchmarks and tests; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, list[float]] = {s: [] for s in STAGES}

    def record(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.samples.setdefault(stage, []).append(seconds)

    def clear(self) -> None:
        with self._lock:
            self.samples = {s: [] for s in STAGES}
