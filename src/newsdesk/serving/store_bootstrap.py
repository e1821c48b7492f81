"""The serving start's bootstrap of the online store from `--dataset`, in the background.

The service answers from its first second: while the load runs, readers not yet loaded get
the cold-start answer, and `/readyz` answers 200 with `"status": "loading"` and the job's
state under `"bootstrap"`; once it is done the status is `"ready"`. The load itself is
`newsdesk.features.bootstrap.bootstrap_store` (idempotent through a marker in the store, so a
restart or a second replica sharing Redis loads nothing twice).

States: `off` (no dataset or disabled), `loading`, `done`, `up_to_date` (nothing new), `busy`
(another process holds the load lock), `interrupted` (a crashed load left its lock), `failed`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from newsdesk.features.online_store import OnlineStore
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.heap import loading_state

log = get_logger("newsdesk.serving.store_bootstrap")


class StoreBootstrapJob:
    """One background load of a dataset into the online store; `status()` is JSON-able."""

    def __init__(self, store: OnlineStore, dataset_dir: Path | None, *,
                 event_log: Any = None, enabled: bool = True) -> None:
        self._store, self._dataset, self._event_log = store, dataset_dir, event_log
        self.state = "off" if dataset_dir is None or not enabled else "pending"
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        self._stop = threading.Event()
        if self.state == "off":
            self.finished.set()

    def start(self) -> None:
        if self.state != "pending":
            return
        self.state = "loading"
        self._thread = threading.Thread(target=self._run, name="store-bootstrap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from newsdesk.features.bootstrap import bootstrap_store

        store = self._store.patient()  # off the request path: patient timeouts
        try:
            assert self._dataset is not None
            with loading_state():  # no collector pauses over the growing state (serving/heap)
                report = bootstrap_store(store, self._dataset, event_log=self._event_log)
            # another process sharing the store (a sibling worker, a replica) holds the load:
            # stay "loading" until it is done, so that no worker's /readyz says "ready" while
            # the shared store is half loaded
            while report.status == "busy" and not self._stop.wait(1.0):
                report = bootstrap_store(store, self._dataset, event_log=self._event_log)
            self.report = report.to_dict()
            self.state = "done" if report.status == "loaded" else report.status
            log.info("store_bootstrap_finished", summary=report.summary())
        except Exception as exc:  # the service keeps serving (cold readers) and says why
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = "failed"
            log.error("store_bootstrap_failed", error=self.error)
        finally:
            self.finished.set()

    @property
    def loading(self) -> bool:
        return self.state in ("pending", "loading")

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state}
        if self.report is not None:
            out.update({k: self.report[k] for k in ("users", "clicks", "impressions",
                                                     "articles", "seconds", "detail")})
        if self.error is not None:
            out["error"] = self.error
        return out

    def join(self, timeout_s: float | None = None) -> None:
        self._stop.set()  # stops waiting for another process's load (not a load of ours)
        self.finished.wait(timeout_s)
