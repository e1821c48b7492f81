"""The pipeline cycle's store replays, before and after batching, in the same run.

    benchmarks/pipeline_cycle_parts.py --quick      # 100k impressions (1M shown items)
    benchmarks/pipeline_cycle_parts.py              # 1M impressions (10M shown items)

On a simulated 7-day world (the world of benchmarks/pipeline_cycle.py) and one bundle trained
on it (`hashing` embedder, a short ranker: the ranker is not what is measured), CPU and wall
seconds of:

* warm_store: the whole log into a fresh store (what the drift reference of `newsdesk train`
  does), event by event (`warm_store_sequential`, the old path) and batched (`warm_store`);
* gate_replay: the gate's replay of the last 24 h with 72 h of warm-up and 5000 scored
  impressions, through the bundle on two stores: the old event-by-event replay
  (`build_events` + `replay_events`) and `pipelines.gate_replay.sampled_replay`; the
  per-impression AUCs of both are compared (max_abs_auc_diff).

CPU seconds are the figure to compare on a shared machine (wall time also counts other
users' processes holding the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _timed(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, {"wall_s": round(time.perf_counter() - w, 2),
                 "cpu_s": round(time.process_time() - c, 2)}


def _old_gate_replay(dataset: Path, start: float, end: float, systems: dict, stores: list,
                     warmup: float, max_scored: int, seed: int) -> dict:
    """The gate's replay before batching (evaluate_pair as it was)."""
    from newsdesk.data.dataset import Dataset
    from newsdesk.evaluation.replay import (
        ClickEvent,
        ImpressionEvent,
        build_events,
        history_events,
        replay_events,
    )

    ds = Dataset(dataset)
    events = build_events(ds, score_from=start, score_until=end, seed_histories=False)
    since = start - warmup * 3600.0
    events = [e for e in events if not isinstance(e, ImpressionEvent | ClickEvent)
              or e.ts >= since]
    events = history_events(ds, events[0].ts if events else 0.0) + events
    scored = [i for i, e in enumerate(events) if isinstance(e, ImpressionEvent) and e.scored]
    if len(scored) > max_scored:
        keep = set(np.random.default_rng(seed).choice(len(scored), max_scored,
                                                      replace=False).tolist())
        for j, i in enumerate(scored):
            if j not in keep:
                ev = events[i]
                events[i] = ImpressionEvent(ev.ts, ev.impression, False)
    return replay_events(events, systems, stores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n_imps = int(1e5 if args.quick else 1e6)

    from newsdesk.content import make_embedder
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.features.training_log import load_log, warm_store, warm_store_sequential
    from newsdesk.models.bundle import load_recommender
    from newsdesk.pipelines.gate_replay import sampled_replay
    from newsdesk.pipelines.train import TrainConfig, train
    from newsdesk.pipelines.window import latest_window
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    days = 7.0
    sim = SimulationConfig(seed=5, n_users=max(2000, n_imps // 20), days=days,
                           articles_per_day=min(5000, max(200, n_imps // 200)),
                           impressions_per_day=round(n_imps / days), slate_size=10)
    result: dict[str, Any] = {"impressions": n_imps, "shown_items": n_imps * 10}
    with tempfile.TemporaryDirectory(prefix="nd-cycle-parts-") as tmp:
        root = Path(tmp)
        simulate_to_dataset(sim, root / "ds")
        cfg = TrainConfig.from_dict({"embedder": "hashing", "reference_requests": 0,
                                     "ranker": {"num_boost_round": 20}})
        bundle = root / "bundles" / train(root / "ds", root / "bundles", cfg)
        log = load_log(root / "ds")
        end = log.time_range[1] + 1.0
        parts: dict[str, dict[str, Any]] = {}
        for name, fn in (("sequential", warm_store_sequential), ("batched", warm_store)):
            store = MemoryOnlineStore(half_life_hours=6.0)
            _, parts[name] = _timed(lambda s=store, f=fn: f(s, log, until=end))
        parts["cpu_ratio"] = round(parts["sequential"]["cpu_s"]
                                   / max(parts["batched"]["cpu_s"], 1e-9), 1)
        result["warm_store"] = parts
        print(f"warm_store: {parts}")

        emb = make_embedder("hashing")
        start, stop = latest_window(root / "ds", 24)

        def systems() -> tuple[dict, list]:
            stores = [MemoryOnlineStore(half_life_hours=6.0) for _ in range(2)]
            return ({n: load_recommender(bundle, s, embedder=emb, ranker="lightgbm")
                     for n, s in zip(("active", "candidate"), stores, strict=True)}, stores)

        gate: dict[str, Any] = {}
        sy, st = systems()
        old, gate["event_by_event"] = _timed(lambda: _old_gate_replay(
            root / "ds", start, stop, sy, st, 72.0, 5000, 0))
        sy, st = systems()
        new, gate["batched"] = _timed(lambda: sampled_replay(
            root / "ds", start, stop, sy, st, warmup_hours=72.0, max_scored=5000, seed=0))
        gate["cpu_ratio"] = round(gate["event_by_event"]["cpu_s"]
                                  / max(gate["batched"]["cpu_s"], 1e-9), 1)
        a, b = old["active"].per_unit()["auc"], new["active"].per_unit()["auc"]
        gate["scored_impressions"] = len(new["active"].impression_ids)
        gate["same_impressions"] = old["active"].impression_ids == new["active"].impression_ids
        gate["max_abs_auc_diff"] = float(np.nanmax(np.abs(a - b))) if len(a) == len(b) else None
        result["gate_replay"] = gate
        print(f"gate_replay: {gate}")
    out = {"benchmark": "pipeline_cycle_parts", "quick": args.quick,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "shared": True},
           "systems": {"local": result}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
