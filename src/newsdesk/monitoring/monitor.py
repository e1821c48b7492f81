"""`ServiceMonitor`: drift, online quality and data quality of one serving app.

    create_app ──> ServiceMonitor(metrics.registry, settings)
      model factory wrapped: each loaded model gets a DriftWindow if its bundle has a reference
      routes ──> quality.record_slate / record_click, data.record_events / record_rejected
      timer thread (monitor_interval_s) ──> PSI, coverage, lags, catalog freshness (gauges)
      GET /v1/monitoring ──> snapshot()

The heavy work (PSI, coverage, catalog scans) runs only on the timer thread; the request path
only counts. `refresh()` can also be called directly (tests, the dashboard's first paint).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from newsdesk.monitoring.data_quality import DataQualityMonitor
from newsdesk.monitoring.drift import SCORE, DriftReport, DriftWindow, Reference
from newsdesk.monitoring.logging import get_logger
from newsdesk.monitoring.quality import QualityMonitor

log = get_logger("newsdesk.monitoring")


class ServiceMonitor:
    """See the module docstring. `active` returns the active model (or None)."""

    def __init__(self, registry: CollectorRegistry, *, threshold: float, window: int,
                 sample_every: int, interval_s: float) -> None:
        self.threshold = threshold
        self.window = window
        self.sample_every = sample_every
        self.interval_s = interval_s
        self.quality = QualityMonitor(registry)
        self.data = DataQualityMonitor(registry)
        self.psi = Gauge("newsdesk_psi", "Population stability index of a ranker feature or "
                         "of the model score (series=\"score\") against the bundle's reference.",
                         ["model_version", "series"], registry=registry)
        self.psi_threshold = Gauge("newsdesk_psi_threshold", "The PSI alarm threshold "
                                   "(settings).", registry=registry)
        self.psi_threshold.set(threshold)
        self.psi_rows = Gauge("newsdesk_psi_window_rows", "Rows in the PSI window.",
                              ["model_version"], registry=registry)
        self.drift_alarm = Gauge("newsdesk_drift_alarm", "1 when a PSI of the model version "
                                 "exceeds the threshold.", ["model_version"], registry=registry)
        self.ready = Gauge("newsdesk_ready", "1 while the service is ready (model loaded, "
                           "online store answering), as /readyz; refreshed on the timer.",
                           registry=registry)
        self.windows: dict[str, DriftWindow] = {}
        self._sources: dict[str, Callable[[], Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- wiring -----------------------------------------------------------------------------
    def wrap_factory(self, factory: Callable[[str | None, Any], Any],
                     bundle_path: Callable[[str], Path]) -> Callable[[str | None, Any], Any]:
        """A model factory that gives each loaded model with a `drift` slot its window."""
        def load(version: str | None, store: Any) -> Any:
            model = factory(version, store)
            self.attach(model, bundle_path)
            return model

        return load

    def attach(self, model: Any, bundle_path: Callable[[str], Path]) -> None:
        if not hasattr(model, "drift"):
            return  # not a bundle-backed model (baselines, test doubles): no PSI
        version = str(model.version)
        window = self.windows.get(version)
        if window is None:
            try:
                reference = Reference.load(bundle_path(version))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("drift_reference_unreadable", version=version, error=str(exc))
                reference = None
            if reference is None:
                log.info("drift_no_reference", version=version)  # an older bundle: no PSI
                return
            window = DriftWindow(reference, window=self.window,
                                 sample_every=self.sample_every, threshold=self.threshold)
            self.windows[version] = window
        model.drift = window

    def sources(self, *, now: Callable[[], float], catalog: Callable[[], Any],
                active: Callable[[], Any], ready: Callable[[], bool]) -> None:
        """What the timer reads: the service clock, the live catalog, the active model and
        the readiness check."""
        self._sources = {"now": now, "catalog": catalog, "active": active, "ready": ready}

    # -- timer ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="newsdesk-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception as exc:  # monitoring must never take the service down
                log.warning("monitor_refresh_failed", error=f"{type(exc).__name__}: {exc}")

    def refresh(self) -> None:
        """Recompute PSI, coverage, lags and catalog freshness; set the gauges."""
        for version, window in list(self.windows.items()):
            report = window.compute()
            self.psi_rows.labels(version).set(report.rows)
            if report.score is None:
                continue
            self.psi.labels(version, SCORE).set(report.score)
            for name, value in report.features.items():
                self.psi.labels(version, name).set(value)
            self.drift_alarm.labels(version).set(1.0 if report.alarm else 0.0)
        src = self._sources
        if src:
            self.ready.set(1.0 if src["ready"]() else 0.0)
        catalog = src["catalog"]() if src else None
        if catalog is not None:
            self.quality.refresh(lambda: (e.article_id for e in catalog.latest(src["now"]())))
        if src:
            model = src["active"]()
            index = getattr(getattr(getattr(model, "ws", None), "catalog", None), "index", None)
            self.data.refresh(src["now"](), catalog, index)

    # -- request-path hooks (counting only) ----------------------------------------------------
    def on_slate(self, request_id: str, surface: str, variant: str | None,
                 model_version: str | None, article_ids: list[str], degraded: bool,
                 catalog: Any) -> None:
        cats = [getattr(catalog.get(a), "category", None) for a in article_ids]
        self.quality.record_slate(request_id, surface, variant, model_version, article_ids,
                                  cats, degraded)

    def on_events(self, events: list[Any], catalog: Any, now: float) -> None:
        """Accepted API events (impression / click / dwell models)."""
        rows = []
        for e in events:
            ts = e.timestamp.timestamp() if e.timestamp is not None else now
            article_id = getattr(e, "article_id", None)
            rows.append((e.type, ts, article_id))
            if e.type == "click":
                self.quality.record_click(e.event_id, e.request_id, e.article_id)
        self.data.record_events(rows, lambda a: a in catalog)

    # -- the JSON of GET /v1/monitoring -----------------------------------------------------
    def snapshot(self, active_version: str | None) -> dict[str, Any]:
        window = self.windows.get(active_version) if active_version else None
        report: DriftReport | None = window.last if window is not None else None
        psi: dict[str, Any] = {
            "model_version": active_version, "reference": window is not None,
            "score": None, "features": {}, "threshold": self.threshold,
            "window": 0, "alarm": False, "drifted": [],
        }
        if report is not None:
            psi.update(score=report.score, features=report.features, window=report.rows,
                       alarm=report.alarm, drifted=report.drifted)
        return {"psi": psi, "quality": self.quality.rows(), "data_quality": self.data.snapshot()}
