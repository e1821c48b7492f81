"""CPU cost of applying click batches to the embedded online store (the events route's apply).

    benchmarks/store_apply.py [--quick] [--json FILE]

Batches of 500 clicks, one timestamp per batch (as POST /v1/events stamps them), random
readers and articles drawn like serve_load's events phase, applied with
`MemoryOnlineStore.record_events` after a warm-up of 100 batches. Two reader pools: the
serve_load quick state's (11,349 readers, 1,365 live articles: each reader clicks again within
the session, so most clicks pair with earlier ones for co-visitation) and the full state's
(569,260 readers, 10,970 articles: almost none do). Figure: process CPU microseconds per click,
the minimum over 6 windows of 50 batches (CPU time and the minimum: the machine is shared).
Compare two codes by running it twice with PYTHONPATH pointing at each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from newsdesk.data.eventlog.base import coerce_batch
from newsdesk.features.memory_store import MemoryOnlineStore

POOLS = {"quick_state": (11_349, 1_365), "full_state": (569_260, 10_970)}


def measure(readers: int, articles: int, windows: int, per_window: int) -> float:
    rng = random.Random(1)
    users = [f"U{i}" for i in range(readers)]
    arts = [f"N{i}" for i in range(articles)]
    t0 = 1.77e9

    def batch(k: int) -> list:
        now = datetime.fromtimestamp(t0 + k * 0.1, UTC)
        return coerce_batch({"kind": "interaction", "type": "click", "event_id": f"e{k}-{j}",
                             "user_id": rng.choice(users), "article_id": rng.choice(arts),
                             "timestamp": now} for j in range(500))

    batches = [batch(k) for k in range(100 + windows * per_window)]
    store = MemoryOnlineStore(half_life_hours=6.0)
    for b in batches[:100]:
        store.record_events(b)
    best = float("inf")
    for w in range(windows):
        part = batches[100 + w * per_window: 100 + (w + 1) * per_window]
        start = time.process_time()
        for b in part:
            store.record_events(b)
        best = min(best, (time.process_time() - start) / (len(part) * 500))
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 windows of 20 batches")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    windows, per = (3, 20) if args.quick else (6, 50)
    out = {"benchmark": "store_apply", "quick": args.quick, "shared_machine": True,
           "load_average": list(os.getloadavg()), "us_per_click": {}}
    for name, (readers, articles) in POOLS.items():
        us = measure(readers, articles, windows, per)
        out["us_per_click"][name] = round(us, 2)
        print(f"{name:>12}: {us:6.2f} us CPU per click ({readers} readers, {articles} articles)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
