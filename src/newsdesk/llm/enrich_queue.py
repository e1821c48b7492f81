"""Enrichment of articles upserted through the API: a bounded queue and one background thread.

    PUT /v1/articles ──submit() (never blocks)──> queue (bounded; full: dropped + counted)
                                                    │ worker thread (nice +10; before each
                                                    │ article and, with the in-process model,
                                                    │ before each token it waits while the
                                                    │ request path is busy: serving/
                                                    ▼ load_signal.py, llm/yielding.py)
                     switch off: dropped + counted; same (content, prompt, model) as stored:
                     skipped; else Enricher -> EnrichmentStore (state dir, Parquet)

The upsert returns before any model work starts; the model loads on the first article, in
this thread. Only the worker that received the upsert enqueues it, so several serving
processes do not enrich the same article twice.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from newsdesk.data.schema import Article
from newsdesk.errors import LLMDisabled, LLMError, LLMInvalidOutput
from newsdesk.llm.enrichment import Enricher
from newsdesk.llm.enrichment_store import EnrichmentStore
from newsdesk.llm.yielding import yielding_to
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.llm.enrich_queue")
_STOP = object()


class EnrichQueue:
    """The background enrichment worker of one process (see the module docstring)."""

    def __init__(self, service: Any, store: EnrichmentStore, *, maxsize: int = 1000,
                 nice: int = 10) -> None:
        self.service = service
        self.store = store
        self.nice = nice
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._busy = threading.Event()
        self._known: dict[str, tuple[str, str, str]] | None = None
        self._enricher: Enricher | None = None
        self.enriched = 0
        self.dropped: dict[str, int] = {}
        # the serving process's load (serving/load_signal.LoadSignal: busy(), last_rate); the
        # worker waits while it is busy (None: never)
        self.load: Any = None
        self.waited_s = 0.0  # total time spent waiting for the request path to calm down
        self._stopping = threading.Event()

    @classmethod
    def attach(cls, service: Any, root: Path) -> EnrichQueue | None:
        """Give `service` an enrichment queue storing under `root`, if the setting asks."""
        if not service.settings.enrich_on_upsert:
            return None
        q = cls(service, EnrichmentStore(root), maxsize=service.settings.enrich_queue_size,
                nice=service.settings.enrich_nice)
        service.enrich_queue = q
        return q

    # -- producer side (the request path) ------------------------------------------------------
    def submit(self, articles: Iterable[Article]) -> int:
        """Queue articles for enrichment without blocking; returns how many were queued."""
        queued = 0
        if not self.service.enabled:
            for _ in articles:
                self._drop("disabled")
            return 0
        self._ensure_started()
        for article in articles:
            try:
                self._queue.put_nowait(article)
                queued += 1
            except queue.Full:
                self._drop("queue_full")
        self.service.metrics.queue_depth.set(self._queue.qsize())
        return queued

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.service.metrics.queue_dropped.labels(reason).inc()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llm-enrich",
                                                daemon=True)
                self._thread.start()

    # -- the worker thread -----------------------------------------------------------------
    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: threads have a nice value
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._busy.set()  # from here: wait_idle() is False until this article is done
            self._wait_for_idle_path()
            if self._stopping.is_set():
                return
            try:
                self._handle(item)
            except Exception as exc:  # one bad article must not stop the worker
                self._drop("error")
                log.error("llm_enrich_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._busy.clear()
                self.service.metrics.queue_depth.set(self._queue.qsize())

    def _wait_for_idle_path(self) -> None:
        if self.load is None:
            return
        start = time.monotonic()
        gauge = self.service.metrics.enrich_waiting
        while not self._stopping.is_set() and self.load.busy():
            gauge.set(1)
            self._stopping.wait(0.5)
        gauge.set(0)
        self.waited_s += time.monotonic() - start

    def _handle(self, article: Article) -> None:
        if not self.service.enabled:
            self._drop("disabled")
            return
        if self._enricher is None:
            self._enricher = Enricher(self.service.provider(), metrics=self.service.metrics,
                                      max_tokens=self.service.settings.max_tokens_for("enrich"))
            self._known = self.store.keys()
        assert self._known is not None
        key = self._enricher.key(article)
        if self._known.get(article.article_id) == key:
            return  # already enriched from the same text, prompt and model
        try:
            # the local model also pauses token by token while serving is busy
            with yielding_to(self.load.busy if self.load is not None else None):
                record = self._enricher.enrich(article)
        except LLMInvalidOutput:
            self._drop("invalid_output")
            return
        except LLMDisabled:
            self._drop("disabled")
            return
        except LLMError as exc:
            self._drop("error")
            log.warning("llm_enrich_error", article_id=article.article_id, error=str(exc))
            return
        self.store.write([record])
        self._known[article.article_id] = key
        self.enriched += 1
        self.service.metrics.enriched.inc()

    # -- control ---------------------------------------------------------------------------
    def wait_idle(self, timeout_s: float) -> bool:
        """True once the queue is empty and no article is in work (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._busy.is_set():
                return True
            time.sleep(0.02)
        return False

    def status(self) -> dict[str, Any]:
        return {"depth": self._queue.qsize(), "maxsize": self._queue.maxsize,
                "enriched": self.enriched, "dropped": dict(self.dropped),
                "waited_for_serving_s": round(self.waited_s, 1),
                "serving_load_s_per_s": (round(self.load.last_rate, 3) if self.load is not None
                                         and self.load.last_rate is not None else None),
                "running": self._thread is not None and self._thread.is_alive()}

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the article in work (queued ones are dropped: the upsert path re-queues
        nothing, so a restart enriches them on their next upsert or by `newsdesk enrich`)."""
        if self._thread is None:
            return
        self._stopping.set()  # also ends a wait for the request path
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):  # just drained: there is room
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout=timeout_s)
