"""One cycle of the continuous training loop (`newsdesk pipeline run --once`), timed per step.

    benchmarks/pipeline_cycle.py --quick            # 100k impressions (1M shown items)
    benchmarks/pipeline_cycle.py                    # 1M impressions (10M shown items): target
                                                    # one cycle < 5 min on 2 cores, local engine
    benchmarks/pipeline_cycle.py --impressions 3e5 --json out.json

An impression is one logged slate (a row of the impressions table, one event-log record) of 10
shown items. Setup, not timed: a simulated 7-day world of that many impressions is split
`--log-hours` (24) before its end into a dataset and a real SQLite event log holding the rest,
and the serving bundle is trained on the dataset (`newsdesk train`: its time is the baseline of
the same run, since the machine is shared). Timed, in a child process (peak RSS via wait4):
one pipeline cycle: export the logged events, train the candidate on the dataset cut at the
evaluation window (last 24 h), replay the window through both bundles (5000 scored
impressions, paired bootstrap), gate, promote. The embedder is `hashing` (the MiniLM cost of
the catalog is benchmarks/embed.py's). The setup's training and the cycle share one embedding
cache (keyed by content hash), as consecutive cycles of `newsdesk pipeline run` share the
state dir's: the cycle embeds only the articles the previous training had not seen.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = """
import json, sys, time
from pathlib import Path
from newsdesk.pipelines.config import PipelineConfig
from newsdesk.pipelines.loop import PipelineRunner
cfg = PipelineConfig.model_validate(json.loads(sys.argv[4]))
t = time.perf_counter()
rec = PipelineRunner(Path(sys.argv[1]), Path(sys.argv[2]), config=cfg,
                     event_log=sys.argv[3]).run_once()
rec["wall_s"] = time.perf_counter() - t
print(json.dumps(rec, default=str))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--impressions", type=float, default=None)
    ap.add_argument("--log-hours", type=float, default=24.0)
    ap.add_argument("--days", type=float, default=7.0)
    args = ap.parse_args()
    n_imps = int(args.impressions or (1e5 if args.quick else 1e6))

    from newsdesk.data.dataset import Dataset
    from newsdesk.data.eventlog import open_event_log
    from newsdesk.models.active_bundle import write_active
    from newsdesk.pipelines.config import PipelineConfig
    from newsdesk.pipelines.train import train
    from newsdesk.pipelines.window import dataset_before, latest_window, log_events_since
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    tmp = tempfile.TemporaryDirectory(prefix="nd-pipeline-cycle-")
    cfg = PipelineConfig.from_dict({
        "train": {"embedder": "hashing",
                  "embedding_cache_dir": str(Path(tmp.name) / "embedding-cache")},
        "evaluation": {"window_hours": 24, "max_scored_impressions": 5000},
        "retry": {"attempts": 1},
    })
    sim = SimulationConfig(seed=5, n_users=max(2000, n_imps // 20), days=args.days,
                           articles_per_day=min(5000, max(200, n_imps // 200)),
                           impressions_per_day=round(n_imps / args.days), slate_size=10)
    with tmp:
        root = Path(tmp.name)
        t = time.perf_counter()
        simulate_to_dataset(sim, root / "full")
        simulate_s = time.perf_counter() - t
        cut, _ = latest_window(root / "full", args.log_hours)
        dataset = dataset_before(root / "full", root / "dataset", cut)
        url = f"sqlite:///{root / 'events.db'}"
        t = time.perf_counter()
        with open_event_log(url) as log:
            logged = log_events_since(root / "full", cut, log)
        log_s = time.perf_counter() - t
        t = time.perf_counter()
        active = train(dataset, root / "bundles", cfg.train)
        baseline_train_s = time.perf_counter() - t
        write_active(root / "bundles", active, by="benchmark")
        ds = Dataset(dataset)
        print(f"setup: {n_imps:,} impressions simulated in {simulate_s:.1f} s; dataset "
              f"{ds.count('impressions'):,} impressions; {logged:,} events logged "
              f"({log_s:.1f} s); baseline `newsdesk train` {baseline_train_s:.1f} s")
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(dataset),
                                 str(root / "bundles"), url, cfg.model_dump_json()],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            raise SystemExit(f"the pipeline cycle failed (status {status})")
        rec = json.loads(out.strip().splitlines()[-1])
        manifest = json.loads((root / "bundles" / rec["candidate"] / "manifest.json").read_text())
    steps = rec["steps_s"]
    result = {
        "impressions": n_imps, "shown_items": n_imps * 10, "users": sim.n_users,
        "days": args.days, "logged_events": logged,
        "exported": rec.get("export", {}).get("added"),
        "cycle_s": round(rec["wall_s"], 1), "steps_s": steps,
        "train_steps_s": manifest.get("timings_s"),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
        # CPU seconds of the cycle's process: on a shared machine, wall time also counts the
        # time other users' processes held the cores
        "cycle_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "baseline_train_s": round(baseline_train_s, 1),
        "cycle_over_train": round(rec["wall_s"] / baseline_train_s, 2),
        "decision": rec["decision"], "reasons": rec.get("reasons"),
        "scored_impressions": (rec.get("gate") or {}).get("scored_impressions"),
    }
    print(f"cycle {result['cycle_s']} s, {result['cycle_cpu_s']} CPU s "
          f"({result['cycle_over_train']}x a plain train), peak "
          f"{result['peak_rss_gib']} GiB, decision {rec['decision']}")
    for step, s in steps.items():
        print(f"  {step:<16}{s:>8.1f} s")
    out_json = {"benchmark": "pipeline_cycle", "quick": args.quick,
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "shared": True},
                "systems": {"local": result}, "targets": {"cycle_s": 300}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out_json, indent=2))


if __name__ == "__main__":
    main()
