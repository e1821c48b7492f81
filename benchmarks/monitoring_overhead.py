"""Benchmark what model and data monitoring costs the request path, and the timer's work.

    python benchmarks/monitoring_overhead.py [--quick] [--json FILE]

Per request (mean over many calls, microseconds): `DriftWindow.observe` with a candidate matrix
of 300 rows x 19 features (the ranker's FEATURE_NAMES) at sample_every 10 (the default) and 1,
`ServiceMonitor.on_slate` for a slate of 10 (quality counters, Prometheus labels), and
`on_events` for a batch of 2 clicks. Baselines measured in the same run: an empty Python call
and one `np.argsort` of the 300 scores (the smallest thing a ranker does per request).
Per timer tick (milliseconds): `DriftWindow.compute` over a full window (5000 rows) and
`ServiceMonitor.refresh`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from newsdesk.features.ranking_features import FEATURE_NAMES
from newsdesk.monitoring.drift import DriftWindow, Reference
from newsdesk.monitoring.monitor import ServiceMonitor

ROWS, K = 300, 10


def per_call_us(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    n, batch = 0, 1000
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(batch):
            fn()
        n += batch
    return (time.perf_counter() - start) / n * 1e6, n


@dataclass
class _Entry:
    category: str


@dataclass
class _Click:
    event_id: str
    request_id: str
    article_id: str
    type: str = "click"
    timestamp: datetime | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (seconds)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 3.0
    rng = np.random.default_rng(0)
    ref_x = rng.normal(size=(20_000, len(FEATURE_NAMES))).astype(np.float32)
    reference = Reference.fit(ref_x, ref_x[:, 1], FEATURE_NAMES)
    x = rng.normal(size=(ROWS, len(FEATURE_NAMES))).astype(np.float32)
    scores = rng.normal(size=ROWS)

    results: dict[str, Any] = {
        "benchmark": "monitoring_overhead", "quick": args.quick, "seconds_per_case": seconds,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "note": "shared 2-core machine: compare ratios to the baselines of the same run",
        "systems": {},
    }
    sysd = results["systems"]

    def case(name: str, fn: Callable[[], object]) -> float:
        us, n = per_call_us(fn, seconds)
        sysd[name] = {"us_per_request": round(us, 3), "calls": n}
        print(f"{name:32s} {us:9.3f} us/request ({n} calls)")
        return us

    def noop() -> None:
        return None

    base = case("baseline_empty_call", noop)
    argsort = case("baseline_argsort_300", lambda: np.argsort(scores))
    for every in (10, 1):
        window = DriftWindow(reference, window=5000, sample_every=every, threshold=0.2)
        case(f"drift_observe_every_{every}", lambda w=window: w.observe(x, scores))
    monitor = ServiceMonitor(CollectorRegistry(), threshold=0.2, window=5000,
                             sample_every=10, interval_s=60)
    catalog = {f"a{i}": _Entry(f"c{i % 7}") for i in range(1000)}
    ids = [f"a{i}" for i in range(K)]
    counter = iter(range(10**9))
    case("quality_on_slate_k10", lambda: monitor.on_slate(
        f"r{next(counter)}", "front_page", None, "v1", ids, False, catalog))
    clicks = [_Click("e1", "r1", "a1"), _Click("e2", "r1", "a9999")]
    case("on_events_2_clicks", lambda: monitor.on_events(clicks, catalog, time.time()))
    for name, fn in (("drift_compute_5000_rows", window.compute),):
        window.add(np.repeat(x, 20, axis=0)[:5000], np.repeat(scores, 20)[:5000])
        t = time.perf_counter()
        reps = 20
        for _ in range(reps):
            fn()
        ms = (time.perf_counter() - t) / reps * 1e3
        sysd[name] = {"ms_per_tick": round(ms, 3)}
        print(f"{name:32s} {ms:9.3f} ms/tick")
    every10 = sysd["drift_observe_every_10"]["us_per_request"]
    slate = sysd["quality_on_slate_k10"]["us_per_request"]
    results["summary"] = {
        "request_path_us": round(every10 + slate, 3),
        "request_path_over_argsort": round((every10 + slate) / argsort, 2),
        "drift_observe_every_10_over_empty_call": round(every10 / base, 2),
    }
    print(f"request path (observe every 10 + on_slate): {every10 + slate:.2f} us "
          f"= {results['summary']['request_path_over_argsort']}x one argsort of 300 scores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
