"""Training cost of `newsdesk train`: wall time and peak memory versus log size.

    benchmarks/train_cost.py --quick                 # 1M shown impressions
    benchmarks/train_cost.py                         # 1M and 10M (target: 10M < 10 min, 8 GiB)
    benchmarks/train_cost.py --sizes 1e6 1e7 5e7 --json out.json

"Impressions" are shown items (slate rows): size / 10 slates of 10. Each size is simulated
(not timed), then trained in a child process whose peak RSS is read with `os.wait4`, so the
figure is the training job's alone. The text embedder is `--embedder` (default `hashing`, so
the figure is the pipeline's own cost; the MiniLM embedding of the catalog is measured by
benchmarks/embed.py and is cached across runs with `embedding_cache_dir`). The ranker's
impressions are subsampled to `ranker.max_train_impressions` (default 200k slates), which is
what keeps training time sublinear in the log size; the point-in-time replay reads every event.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = """
import json, sys, time
from pathlib import Path
from newsdesk.pipelines.train import TrainConfig, train
cfg = TrainConfig.from_dict({"embedder": sys.argv[3]})
t = time.perf_counter()
version = train(Path(sys.argv[1]), Path(sys.argv[2]), cfg)
m = json.loads((Path(sys.argv[2]) / version / "manifest.json").read_text())
print(json.dumps({"seconds": time.perf_counter() - t, "timings": m["timings_s"],
                  "valid": m["metrics"].get("valid"), "rows": m["data"]["rows"]}))
"""


def run_size(shown: int, work: Path, embedder: str) -> dict[str, object]:
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    slates = max(1, shown // 10)
    days = 7.0
    sim = SimulationConfig(seed=5, n_users=max(2000, slates // 20), days=days,
                           articles_per_day=min(5000, max(200, slates // 200)),
                           impressions_per_day=round(slates / days), slate_size=10)
    ds = work / f"sim-{shown}"
    t = time.perf_counter()
    simulate_to_dataset(sim, ds)
    sim_s = time.perf_counter() - t
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(ds), str(work / "bundles"),
                             embedder], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"training failed for {shown} impressions (status {status})")
    result = json.loads(out.strip().splitlines()[-1])
    return {"shown_impressions": shown, "slates": slates, "users": sim.n_users,
            "articles_per_day": sim.articles_per_day, "simulate_s": round(sim_s, 1),
            "train_s": round(float(result["seconds"]), 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),  # ru_maxrss is KiB on Linux
            "stages_s": result["timings"], "valid": result["valid"], "rows": result["rows"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--sizes", type=float, nargs="*", default=None)
    ap.add_argument("--embedder", default="hashing")
    args = ap.parse_args()
    sizes = [int(s) for s in (args.sizes or ([1e6] if args.quick else [1e6, 1e7]))]
    results = []
    with tempfile.TemporaryDirectory(prefix="nd-train-cost-") as tmp:
        for shown in sizes:
            r = run_size(shown, Path(tmp), args.embedder)
            results.append(r)
            print(f"{shown:>11,} shown  train {r['train_s']:>7.1f} s  "
                  f"peak {r['peak_rss_gib']:.2f} GiB  stages {r['stages_s']}")
    out = {"benchmark": "train_cost", "quick": args.quick, "embedder": args.embedder,
           "results": results, "targets": {"10M_train_s": 600, "10M_peak_gib": 8}}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
