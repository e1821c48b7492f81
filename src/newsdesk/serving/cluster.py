"""Keeps the serving processes of one `newsdesk serve --workers N` in step.

Each worker runs one `ClusterSync` (started in the app lifespan when `settings.workers > 1`):

* it **publishes** the runtime changes made through its own API — article upserts and deletes,
  bundle load / promote / roll back — to the `SharedState` change log;
* it **tails** the log every `poll_s` (0.5 s) and applies the other workers' changes in order:
  the catalog and the models of every worker converge within ~1 s of a change (the promise
  is 2 s); a newly started worker replays the log before it reports ready;
* it **heartbeats** (pid, applied seq, loaded models) so that a promote can wait for all;
* it **notices experiment changes** (`PRAGMA data_version` of the experiments database moves
  when another process commits) and rebuilds the assigner, pinning new variant bundles. Kill
  switches and rollout stages travel through the rollout JSON file, already re-read on change.

A promote through any worker is two-phase so that no worker serves a stale model for longer
than one poll after the swap: the bundle is first loaded everywhere (`load` change; the
promoting worker waits until every live worker has applied it, at most `load_wait_s`), then the
`promote` change makes each worker swap one reference. A roll back swaps to a model every
worker already holds (the previous one), so it is a single change.

What is *not* here: the online store (shared Redis), the event log (SQLite WAL or Redis Streams:
multi-process safe on their own) and the experiment registry itself (a SQLite file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from newsdesk.data.schema import Article
from newsdesk.errors import BundleError
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.model_registry import SwapResult
from newsdesk.serving.shared_state import Change, SharedState

if TYPE_CHECKING:
    from newsdesk.serving.app import Services

log = get_logger("newsdesk.serving.cluster")
SHARED_DB = "cluster.db"


def shared_state_path(state_dir: Path) -> Path:
    return state_dir / SHARED_DB


class ClusterSync:
    """One worker's view of the shared change log (see the module docstring)."""

    def __init__(self, svc: Services, *, poll_s: float = 0.5, load_wait_s: float = 300.0,
                 worker_max_age_s: float = 3.0) -> None:
        self.svc = svc
        self.pid = os.getpid()
        self.poll_s = poll_s
        self.load_wait_s = load_wait_s
        self.worker_max_age_s = worker_max_age_s
        self.shared = SharedState(shared_state_path(svc.settings.resolved_state_dir))
        self.seq = 0
        self._task: asyncio.Task[None] | None = None
        self._apply_lock = asyncio.Lock()  # the poll loop and admin calls apply in turn
        self._exp_conn: sqlite3.Connection | None = None
        self._exp_version: int | None = None
        self._stopped = threading.Event()
        self._beater = threading.Thread(target=self._beat_loop, name="cluster-heartbeat",
                                        daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    async def start(cls, svc: Services, **options: float) -> ClusterSync:
        """Catch up with the log (before the worker reports ready), then tail it."""
        sync = cls(svc, **options)
        await sync.poll()
        sync._beater.start()
        sync._task = asyncio.create_task(sync._run(), name="cluster-sync")
        return sync

    async def stop(self) -> None:
        self._stopped.set()
        if self._beater.is_alive():
            await self._io(self._beater.join)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._io(self.shared.forget, self.pid)
        self.shared.close()
        if self._exp_conn is not None:
            self._exp_conn.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bad change must not stop the loop
                log.error("cluster_sync_failed", error=f"{type(exc).__name__}: {exc}")

    async def _io(self, fn, *args):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        return await asyncio.get_running_loop().run_in_executor(self.svc.io_pool, fn, *args)

    # -- tailing ---------------------------------------------------------------------------
    async def poll(self) -> int:
        """Apply the other workers' new changes; heartbeat; returns how many were applied."""
        applied = 0
        async with self._apply_lock:
            while True:
                changes = await self._io(self.shared.since, self.seq)
                for change in changes:
                    if change.origin != self.pid:
                        try:
                            await self._apply(change)
                        except Exception as exc:  # logged; the worker keeps serving
                            log.error("cluster_change_failed", seq=change.seq, kind=change.kind,
                                      error=f"{type(exc).__name__}: {exc}")
                        applied += 1
                    self.seq = change.seq
                if len(changes) < 1000:
                    break
            await self._io(self._heartbeat)
        await self._check_experiments()
        return applied

    def _heartbeat(self) -> None:
        reg = self.svc.registry
        self.shared.heartbeat(self.pid, self.seq, reg.version, [m.version for m in reg.loaded()])

    def _beat_loop(self) -> None:
        # a thread, not the poll task: a worker loading a bundle for seconds is still alive
        while not self._stopped.wait(self.poll_s):
            try:
                self._heartbeat()
            except Exception as exc:  # the next beat retries
                log.warning("cluster_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")

    async def _apply(self, change: Change) -> None:
        svc = self.svc
        if change.kind == "upsert":
            articles = [Article.model_validate(a) for a in json.loads(change.body or "[]")]
            await self._io(svc.registry.upsert_articles, articles)  # embeds: off the loop
            svc.catalog.upsert(articles)
            svc.metrics.catalog_size.set(len(svc.catalog))
        elif change.kind == "delete":
            article_id = json.loads(change.body or '""')
            svc.catalog.remove(article_id)
            await self._io(svc.registry.remove_article, article_id)
            svc.metrics.catalog_size.set(len(svc.catalog))
        elif change.kind == "load":
            if svc.registry.get(change.version or "") is None:
                await self._io(svc.registry.load, change.version)
        elif change.kind in ("promote", "rollback"):
            await self._io(self._activate, change.version)
        log.info("cluster_change_applied", seq=change.seq, kind=change.kind,
                 origin=change.origin)

    def _activate(self, version: str | None) -> None:
        reg = self.svc.registry
        if version is None or reg.version == version:
            return
        if reg.status()["previous"] == version:
            reg.rollback()
        else:
            reg.promote(version)

    async def _check_experiments(self) -> None:
        """Rebuild the assigner when another process changed the experiment registry."""
        from newsdesk.serving.variants import ExperimentAssigner

        assigner = self.svc.assigner
        if not isinstance(assigner, ExperimentAssigner):
            return
        path = self.svc.settings.resolved_state_dir / "experiments.db"
        if self._exp_conn is None:
            if not path.exists():
                return
            self._exp_conn = sqlite3.connect(str(path), check_same_thread=False)
        conn = self._exp_conn
        version = await self._io(lambda: int(conn.execute("PRAGMA data_version").fetchone()[0]))
        if self._exp_version is None:
            self._exp_version = version
            return
        if version != self._exp_version:
            self._exp_version = version
            assigner.refresh()  # on the loop thread: the registry's SQLite lives there
            await self._io(assigner.pin_bundles)
            log.info("cluster_experiments_refreshed")

    # -- publishing (called by the routes after the local change) ----------------------------
    async def published_upsert(self, articles: Sequence[Article]) -> None:
        body = json.dumps([a.model_dump(mode="json") for a in articles])
        await self._io(lambda: self.shared.append("upsert", self.pid, body=body))

    async def published_delete(self, article_id: str) -> None:
        body = json.dumps(article_id)
        await self._io(lambda: self.shared.append("delete", self.pid, body=body))

    async def load(self, version: str | None) -> str:
        """Load a bundle here and tell every worker to load it too (not serving yet)."""
        loaded = await self._io(self.svc.registry.load, version)
        await self._io(lambda: self.shared.append("load", self.pid, version=loaded))
        return str(loaded)

    async def promote(self, version: str | None) -> SwapResult:
        """Load everywhere, wait for every live worker, then swap everywhere (two-phase)."""
        reg = self.svc.registry
        if version is not None and version == reg.version:
            return SwapResult(version, version)
        if version is None or reg.get(version) is None:
            version = await self._io(reg.load, version)
        seq = await self._io(lambda: self.shared.append("load", self.pid, version=version))
        await self._wait_for_all(seq)
        result = await self._io(reg.promote, version)
        await self._io(lambda: self.shared.append("promote", self.pid, version=result.active))
        return result

    async def rollback(self) -> SwapResult:
        result = await self._io(self.svc.registry.rollback)
        await self._io(lambda: self.shared.append("rollback", self.pid, version=result.active))
        return result

    async def _wait_for_all(self, seq: int) -> None:
        deadline = time.monotonic() + self.load_wait_s
        while True:
            others = [w for w in await self._io(self.shared.workers, self.worker_max_age_s)
                      if w.pid != self.pid]
            behind = [w.pid for w in others if w.seq < seq]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise BundleError(f"workers {behind} did not load the bundle within "
                                  f"{self.load_wait_s} s; not promoted")
            await asyncio.sleep(self.poll_s / 2)
