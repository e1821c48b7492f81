"""Follow the bundles directory's ACTIVE pointer: what the training pipeline promotes serves.

`newsdesk pipeline run` promotes by rewriting `BUNDLES_DIR/ACTIVE` atomically
(`models/active_bundle.py`); it never talks to a server. Each serving process runs one
`ActiveWatcher`, a thread that stats the file every `interval_s` (cheap: one stat, the file is
read only when its mtime or size moved) and, when the version it names changes, swaps the
model through the registry like an admin promote: load fully, then swap one reference, so
requests in flight finish on the old model and none is dropped.

With several workers (`--workers N`), every worker watches the file itself, and the swap is
two-phase like `ClusterSync.promote`: each worker loads the new bundle, then waits (at most
`load_wait_s`) until every live worker reports it loaded in the shared worker table before it
swaps, so the workers change model within about one poll of each other instead of one load
time apart. The watcher reacts only to *changes* of the pointer: an admin promote or roll back
through the API is not undone by it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from newsdesk.models.active_bundle import ACTIVE_FILE, active_version
from newsdesk.monitoring.logging import get_logger

if TYPE_CHECKING:
    from newsdesk.serving.app import Services

log = get_logger("newsdesk.serving.bundle_watcher")


class ActiveWatcher:
    """Polls the ACTIVE pointer of `svc.settings.bundles_dir` (see the module docstring)."""

    def __init__(self, svc: Services, *, interval_s: float = 2.0,
                 load_wait_s: float = 120.0) -> None:
        self.svc = svc
        self.path = Path(svc.settings.bundles_dir) / ACTIVE_FILE
        self.interval_s = interval_s
        self.load_wait_s = load_wait_s
        self._stamp: tuple[int, int] | None = self._stat()
        self._seen = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="active-watcher", daemon=True)
        self.swaps = 0

    def start(self) -> ActiveWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> str | None:
        try:
            return active_version(self.path.parent)
        except Exception as exc:  # a broken pointer must not stop serving
            log.error("active_pointer_unreadable", error=f"{type(exc).__name__}: {exc}")
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:  # the old model keeps serving; the next change retries
                log.error("active_swap_failed", error=f"{type(exc).__name__}: {exc}")

    def check(self) -> bool:
        """One poll; True when it swapped."""
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        version = self._read()
        if version is None or version == self._seen:
            return False
        self._seen = version
        reg = self.svc.registry
        if reg.version == version:
            return False
        started = time.perf_counter()
        if self.svc.cluster is not None:
            reg.load(version)
            self._wait_for_workers(version)
        result = reg.promote(version)
        self.swaps += 1
        log.info("active_pointer_swapped", previous=result.previous, active=result.active,
                 seconds=round(time.perf_counter() - started, 3))
        return True

    def _wait_for_workers(self, version: str) -> None:
        shared = self.svc.cluster.shared
        me = self.svc.cluster.pid
        deadline = time.monotonic() + self.load_wait_s
        while time.monotonic() < deadline and not self._stop.is_set():
            others = [w for w in shared.workers() if w.pid != me]
            if all(version in w.loaded or w.active == version for w in others):
                return
            time.sleep(0.1)
        log.warning("active_swap_without_all_workers", version=version)
