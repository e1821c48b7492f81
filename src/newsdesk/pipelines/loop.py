"""The continuous training loop: export -> train -> evaluate -> gate -> promote, on a timer.

    runner = PipelineRunner(dataset_dir, bundles_dir, event_log="sqlite:///events.db")
    record = runner.run_once()          # one cycle, retried with backoff on failure
    runner.run_forever(every_s=3600)    # `newsdesk pipeline run --every 1h`

One cycle, under the pipeline lock (`pipelines/lock.py`, one run at a time across processes):

1. export: new events of the event log are appended to the dataset (`pipelines/export.py`,
   incremental and crash-safe);
2. train: a candidate bundle, on the dataset cut at the evaluation window's start when
   `evaluation.holdout` (so the gate's comparison is out-of-sample for both bundles);
3. evaluate: streaming replay of the latest window through the active bundle and the
   candidate, paired bootstrap per metric (`pipelines/gate.py`);
4. gate and promote: if the rule passes, the ACTIVE pointer of the bundles directory is
   switched atomically (`models/active_bundle.py`); running servers watch it and hot-swap.
   With no active bundle yet, the first candidate is promoted without comparison.

Every outcome, promoted / rejected / failed / skipped, is one line of the audit log and a
metrics update (`pipelines/audit.py`). Promotion is the last step, so a failure anywhere leaves
the active bundle serving; a failed cycle is retried `retry.attempts` times with exponential
backoff. The candidate of a rejected or failed cycle stays on disk (inspect it, promote it by
hand through the admin API); nothing serves it because the pointer does not name it.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsdesk.data.dataset_remote import pull_dataset, push_dataset
from newsdesk.data.eventlog import EventLog, open_event_log
from newsdesk.errors import BundleError, ConfigError, NewsdeskError
from newsdesk.models.active_bundle import active_version, write_active
from newsdesk.models.bundle import list_bundles, resolve_bundle
from newsdesk.models.bundle_remote import (
    fetch_bundle,
    is_remote,
    publish_bundle,
    resolve_remote,
    write_remote_active,
)
from newsdesk.monitoring.logging import get_logger
from newsdesk.pipelines.audit import AUDIT_FILE, METRICS_FILE, AuditLog, PipelineMetrics
from newsdesk.pipelines.config import PipelineConfig
from newsdesk.pipelines.export import export_new_events
from newsdesk.pipelines.gate import Decision, decide, evaluate_pair
from newsdesk.pipelines.lock import PipelineBusy, PipelineLock
from newsdesk.pipelines.trainer import EngineTrainer, Trainer
from newsdesk.pipelines.window import dataset_before, latest_window

log = get_logger("newsdesk.pipelines.loop")


class CycleFailed(NewsdeskError):
    """A pipeline step failed (after its retries); the active bundle keeps serving."""


def default_state_dir(bundles_dir: str | Path) -> Path:
    """Lock, audit log, metrics textfile and work files: beside the bundles directory."""
    return Path(bundles_dir).resolve().parent / "pipeline-state"


class PipelineRunner:
    """Runs pipeline cycles on one dataset and bundles directory (see the module docstring).

    `event_log`: a URL for `open_event_log`, an open EventLog, or None (nothing to export:
    the cycle retrains on the dataset as it is). `trainer`: the plug point, by default the
    `newsdesk train` pipeline on `engine`. `tracker`: optional experiment tracking (MLflow),
    called with each training run's record. `sleep` is injectable so tests need not wait.
    """

    def __init__(self, dataset_dir: str | Path, bundles_dir: str | Path, *,  # or s3://...
                 config: PipelineConfig | None = None, event_log: str | EventLog | None = None,
                 state_dir: str | Path | None = None, trainer: Trainer | None = None,
                 engine: str = "local", tracker: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        # a dataset in object storage: worked on in a local copy under the state dir, pulled
        # before each cycle and pushed after the export (`data/dataset_remote.py`)
        self.dataset_url = str(dataset_dir) if is_remote(dataset_dir) else None
        if self.dataset_url is not None and state_dir is None:
            raise ConfigError("--state-dir is required when --dataset is an object-storage URL")
        self.dataset_dir = (Path(state_dir) / "dataset" if self.dataset_url is not None
                            else Path(dataset_dir))
        # bundles in object storage: trained and evaluated in a local copy under the state
        # dir; promotion publishes the candidate and rewrites the remote ACTIVE pointer
        self.bundles_url = str(bundles_dir) if is_remote(bundles_dir) else None
        if self.bundles_url is not None and state_dir is None:
            raise ConfigError("--state-dir is required when --bundles is an object-storage URL")
        self.state_dir = Path(state_dir) if state_dir else default_state_dir(bundles_dir)
        self.bundles_dir = (self.state_dir / "bundles" if self.bundles_url is not None
                            else Path(bundles_dir))
        self.config = config or PipelineConfig()
        self.event_log = event_log
        self.trainer = trainer or EngineTrainer(self.config.train, engine=engine,
                                                embedding_cache_dir=self._embedding_cache())
        self.tracker = tracker
        self.sleep = sleep
        self.audit = AuditLog(self.state_dir / AUDIT_FILE)
        self.metrics = PipelineMetrics(self.state_dir / METRICS_FILE, history=self.audit)

    # -- one cycle -----------------------------------------------------------------------
    def run_cycle(self) -> dict[str, Any]:
        """One attempt of one cycle; returns its audit record. Raises on failure (recorded)."""
        cycle = f"c{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        rec: dict[str, Any] = {"cycle": cycle, "engine": self.trainer.engine,
                               "dataset": self.dataset_url or str(self.dataset_dir),
                               "bundles": str(self.bundles_dir),
                               "host": socket.gethostname(), "pid": os.getpid(), "steps_s": {}}
        try:
            with PipelineLock(self.state_dir):
                return self._cycle(rec)
        except PipelineBusy as exc:
            self._finish(rec, "skipped", error=str(exc))
            raise

    def _step(self, rec: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        rec["step"] = name
        result = fn()
        rec["steps_s"][name] = round(time.perf_counter() - started, 3)
        return result

    def _cycle(self, rec: dict[str, Any]) -> dict[str, Any]:
        try:
            if self.dataset_url is not None:
                rec["pull"] = self._step(rec, "pull", lambda: pull_dataset(
                    self.dataset_url, self.dataset_dir)).to_dict()  # type: ignore[arg-type]
            if self.event_log is not None:
                stats = self._step(rec, "export", self._export)
                rec["export"] = stats.to_dict()
                if self.dataset_url is not None and (stats.chunks or stats.cleaned_files):
                    # before training: the exported events are durable even if a later
                    # step fails
                    rec["push"] = self._step(rec, "push", lambda: push_dataset(
                        self.dataset_dir, self.dataset_url)).to_dict()  # type: ignore[arg-type]
            active = self._step(rec, "resolve_active", self._active)
            rec["active_before"] = active
            candidate, window = self._step(rec, "train", lambda: self._train(active))
            rec["candidate"] = candidate
            if active is None:
                decision = Decision(True, ["no active bundle: the first candidate is promoted "
                                           "without comparison"])
            else:
                ev = self._step(rec, "evaluate", lambda: evaluate_pair(
                    self.dataset_dir, self.bundles_dir / active, self.bundles_dir / candidate,
                    self.config.evaluation, self.config.gate,
                    embedding_cache_dir=self._embedding_cache()))
                rec["gate"] = ev.to_dict()
                decision = decide(ev, self.config.gate)
            rec["reasons"] = decision.reasons
            rec["train_window_end"] = window
            if decision.promote:
                self._step(rec, "promote", lambda: self._promote(
                    candidate, f"cycle {rec['cycle']}: " + "; ".join(decision.reasons)))
            rec["active_after"] = candidate if decision.promote else active
        except Exception as exc:
            self._finish(rec, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        rec.pop("step", None)
        rec["decision"] = decision.label  # the tracked run carries it too
        self._track(rec)
        return self._finish(rec, decision.label)

    def _export(self) -> Any:
        log_ = self.event_log
        owned = not isinstance(log_, EventLog)
        opened = open_event_log(log_) if owned else log_  # type: ignore[arg-type]
        try:
            return export_new_events(opened, self.dataset_dir,  # type: ignore[arg-type]
                                     chunk_events=self.config.export.chunk_events)
        finally:
            if owned:
                opened.close()  # type: ignore[union-attr]

    def _promote(self, candidate: str, reason: str) -> None:
        if self.bundles_url is not None:
            publish_bundle(self.bundles_dir / candidate, self.bundles_url)
            write_remote_active(self.bundles_url, candidate, by="pipeline", reason=reason)
        write_active(self.bundles_dir, candidate, by="pipeline", reason=reason)

    def _active(self) -> str | None:
        """The serving version; adopts the newest bundle as ACTIVE when there is no pointer,
        so the candidate about to be written cannot become 'the newest' a restart serves."""
        if self.bundles_url is not None:
            try:
                remote = resolve_remote(self.bundles_url)
            except BundleError as exc:
                if "no model bundles" not in str(exc):
                    raise
                return None
            fetch_bundle(self.bundles_url, remote, self.bundles_dir)  # verified local copy
            write_active(self.bundles_dir, remote, by="pipeline", reason="remote ACTIVE")
            return remote
        version = active_version(self.bundles_dir)
        if version is not None:
            return version
        if not list_bundles(self.bundles_dir):
            return None
        newest = resolve_bundle(self.bundles_dir).name
        write_active(self.bundles_dir, newest, by="pipeline",
                     reason="adopted: the newest bundle was serving without a pointer")
        return newest

    def _embedding_cache(self) -> Path:
        """The training config's embedding cache, else `embedding-cache` in the state dir:
        shared by training and the gate's replay, and across cycles (keyed by content hash,
        so a changed article is embedded again)."""
        cache = self.config.train.embedding_cache_dir
        return Path(cache) if cache else self.state_dir / "embedding-cache"

    def _train(self, active: str | None) -> tuple[str, str | None]:
        cfg = self.config.evaluation
        if active is None or not cfg.holdout:
            return self.trainer.train(self.dataset_dir, self.bundles_dir), None
        start, _ = latest_window(self.dataset_dir, cfg.window_hours)
        work = self.state_dir / "work" / f"holdout-{uuid.uuid4().hex[:8]}"
        try:
            cut = dataset_before(self.dataset_dir, work, start)
            version = self.trainer.train(cut, self.bundles_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return version, datetime.fromtimestamp(start, UTC).isoformat()

    def _track(self, rec: dict[str, Any]) -> None:
        if self.tracker is None:
            return
        try:
            rec["tracking"] = self.tracker.log_cycle(rec, self.bundles_dir, self.trainer)
        except Exception as exc:  # tracking is observability: it never blocks a decision
            log.error("pipeline_tracking_failed", error=f"{type(exc).__name__}: {exc}")
            rec["tracking"] = {"error": f"{type(exc).__name__}: {exc}"}

    def _finish(self, rec: dict[str, Any], decision: str, *, error: str | None = None
                ) -> dict[str, Any]:
        now = datetime.now(UTC)
        rec.update(decision=decision, time=now.isoformat(), unix_time=now.timestamp())
        if error is not None:
            rec["error"] = error
        if decision in ("failed", "skipped"):
            rec.setdefault("active_after", self._safe_active())
        self.audit.append(rec)
        self.metrics.record(rec)
        log.info("pipeline_decision", cycle=rec["cycle"], decision=decision,
                 candidate=rec.get("candidate"), active=rec.get("active_after"), error=error)
        return rec

    def _safe_active(self) -> str | None:
        try:
            return active_version(self.bundles_dir)
        except NewsdeskError:
            return None

    # -- retries and the timer -------------------------------------------------------------
    def run_once(self) -> dict[str, Any]:
        """One cycle with retries (exponential backoff); raises CycleFailed after the last."""
        r = self.config.retry
        for attempt in range(1, r.attempts + 1):
            try:
                rec = self.run_cycle()
                rec["attempt"] = attempt
                return rec
            except PipelineBusy:
                raise
            except Exception as exc:
                if attempt == r.attempts:
                    raise CycleFailed(f"pipeline cycle failed after {attempt} attempt(s): "
                                      f"{type(exc).__name__}: {exc}") from exc
                delay = min(r.backoff_s * 2 ** (attempt - 1), r.max_backoff_s)
                log.warning("pipeline_retry", attempt=attempt, delay_s=delay,
                            error=f"{type(exc).__name__}: {exc}")
                self.sleep(delay)
        raise AssertionError("unreachable")

    def run_forever(self, every_s: float, *, stop: threading.Event | None = None,
                    max_cycles: int | None = None,
                    on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        """A cycle every `every_s` seconds (measured start to start) until `stop` is set.

        A failed or skipped cycle is already recorded; the loop goes on to the next tick.
        """
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set() and (max_cycles is None or done < max_cycles):
            started = time.monotonic()
            try:
                rec = self.run_once()
            except (CycleFailed, PipelineBusy) as exc:
                rec = {"decision": "failed" if isinstance(exc, CycleFailed) else "skipped",
                       "error": str(exc)}
            if on_record is not None:
                on_record(rec)
            done += 1
            if max_cycles is not None and done >= max_cycles:
                break
            stop.wait(max(0.0, every_s - (time.monotonic() - started)))
