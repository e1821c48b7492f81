"""Every pipeline decision, kept: an append-only JSONL audit log and Prometheus metrics.

    STATE_DIR/audit.jsonl      one JSON object per line: cycle id, time, decision
                               (promoted | rejected | failed | skipped), the candidate and the
                               active version, the gate's figures (paired bootstrap per metric),
                               export counts, step seconds, engine, host and pid
    STATE_DIR/pipeline.prom    the same decisions as Prometheus metrics, in the node_exporter
                               textfile-collector format (rewritten atomically after each one)

Lines are appended with O_APPEND and fsynced, so concurrent writers cannot interleave inside a
line and an acknowledged decision survives a crash; nothing ever rewrites the file. The metric
totals are recounted from the audit log when the process starts, so one-shot runs (`--once`
from cron) export running totals, not 1. `--metrics-port` serves the same registry over HTTP
for a long-running `--every` loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client import write_to_textfile as _write_textfile

from newsdesk.data.append_file import append_lines

AUDIT_FILE = "audit.jsonl"
METRICS_FILE = "pipeline.prom"
DECISIONS = ("promoted", "rejected", "failed", "skipped")


class AuditLog:
    """Append-only JSONL file of decisions."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode()
        append_lines(self.path, line, mode=0o644)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with self.path.open() as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def records(self) -> list[dict[str, Any]]:
        return list(self)


class PipelineMetrics:
    """The pipeline's Prometheus metrics (names start with `newsdesk_pipeline_`)."""

    def __init__(self, textfile: str | Path | None = None,
                 history: AuditLog | None = None) -> None:
        self.textfile = Path(textfile) if textfile is not None else None
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("newsdesk_pipeline_decisions", "Pipeline decisions by outcome",
                                 ["decision"], registry=r)
        self.last_decision_ts = Gauge("newsdesk_pipeline_last_decision_timestamp_seconds",
                                      "Unix time of the last decision", ["decision"], registry=r)
        self.metric = Gauge("newsdesk_pipeline_replay_metric",
                            "Replay metric of the last evaluated pair (mean over impressions)",
                            ["metric", "system"], registry=r)
        self.diff_low = Gauge("newsdesk_pipeline_diff_ci_low",
                              "Lower bound of the paired bootstrap interval, candidate - active",
                              ["metric"], registry=r)
        self.step_seconds = Gauge("newsdesk_pipeline_step_seconds",
                                  "Seconds of each step of the last cycle", ["step"], registry=r)
        self.active = Gauge("newsdesk_pipeline_active_info", "The active bundle version (1)",
                            ["version"], registry=r)
        self.exported = Counter("newsdesk_pipeline_exported_events",
                                "Events exported from the event log", ["table"], registry=r)
        for d in DECISIONS:
            self.decisions.labels(d)
        if history is not None:  # totals survive restarts of one-shot runs
            for rec in history:
                if rec.get("decision") in DECISIONS:
                    self.decisions.labels(rec["decision"]).inc()
                for table, n in (rec.get("export") or {}).get("added", {}).items():
                    self.exported.labels(table).inc(n)

    def record(self, rec: dict[str, Any]) -> None:
        """Count one audit record and refresh the gauges; rewrite the textfile."""
        decision = rec["decision"]
        self.decisions.labels(decision).inc()
        self.last_decision_ts.labels(decision).set(float(rec.get("unix_time", 0.0)))
        for table, n in (rec.get("export") or {}).get("added", {}).items():
            self.exported.labels(table).inc(n)
        for step, seconds in (rec.get("steps_s") or {}).items():
            self.step_seconds.labels(step).set(seconds)
        for c in (rec.get("gate") or {}).get("comparisons", []):
            self.metric.labels(c["metric"], "active").set(c["mean_a"])
            self.metric.labels(c["metric"], "candidate").set(c["mean_b"])
            self.diff_low.labels(c["metric"]).set(c["ci_low"])
        if rec.get("active_after"):
            self.active.clear()
            self.active.labels(rec["active_after"]).set(1)
        self.write()

    def write(self) -> None:
        if self.textfile is not None:
            self.textfile.parent.mkdir(parents=True, exist_ok=True)
            _write_textfile(str(self.textfile), self.registry)  # temp file + rename

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on host:port in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
