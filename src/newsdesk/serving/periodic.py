"""A background job that runs one tick every `interval_s` on a daemon thread until stopped.

A tick that raises is logged and the next tick retries, so a bad moment never ends the job:
`StoreUnavailable` (Redis down: expected, the breaker reports it) as a warning, anything else
as an error. Used by the service's periodic jobs (rollout autopilot, bandit allocation)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from newsdesk.errors import StoreUnavailable
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.serving.periodic")


class Periodic:
    def __init__(self, name: str, interval_s: float, tick: Callable[[], object]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except StoreUnavailable as exc:
                log.warning("periodic_unavailable", job=self.name, error=str(exc))
            except Exception as exc:  # keep running: the next tick retries
                log.error("periodic_failed", job=self.name,
                          error=f"{type(exc).__name__}: {exc}")
