"""Benchmark the news-world simulator: impressions/s, wall time and peak memory.

    benchmarks/simulator.py                  # full: 1M users x 100k articles x 50M impressions
    benchmarks/simulator.py --quick          # 1M users x 20k articles x 1M impressions
    benchmarks/simulator.py --users 10000 --articles 5000 --impressions 200000 --json out.json

Generation runs in a child process so that its peak RSS (RUSAGE_CHILDREN ru_maxrss) is
measured alone; the dataset goes to a temporary directory (or --out) and its size is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _worker(args: argparse.Namespace) -> None:
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    backlog = 2.0
    config = SimulationConfig(
        seed=args.seed, n_users=args.users, days=args.days,
        articles_per_day=max(1, round(args.articles / (args.days + backlog))),
        impressions_per_day=round(args.impressions / args.days), backlog_days=backlog,
    )
    summary = simulate_to_dataset(config, args.out, progress=args.progress)
    print(json.dumps(summary))


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M impressions (< 3 minutes)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--users", type=int)
    parser.add_argument("--articles", type=int)
    parser.add_argument("--impressions", type=int)
    parser.add_argument("--days", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the dataset here (default: temp dir)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    full = {"users": 1_000_000, "articles": 100_000, "impressions": 50_000_000, "days": 10.0}
    quick = {"users": 1_000_000, "articles": 20_000, "impressions": 1_000_000, "days": 2.0}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.worker:
        _worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="newsdesk-simbench-") as tmp:
        out = args.out or Path(tmp) / "ds"
        cmd = [sys.executable, __file__, "--worker", "--out", str(out), "--seed", str(args.seed),
               "--users", str(args.users), "--articles", str(args.articles),
               "--impressions", str(args.impressions), "--days", str(args.days)]
        if args.progress:
            cmd.append("--progress")
        began = time.perf_counter()
        run = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        wall = time.perf_counter() - began
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kib = usage.ru_maxrss  # KiB on Linux
        size = _dir_bytes(out)

    figures = {
        "benchmark": "simulator",
        "quick": args.quick,
        "users": args.users,
        "articles": summary["articles"],
        "impressions": summary["impressions"],
        "days": args.days,
        "clicks": summary["clicks"],
        "ctr": summary["ctr"],
        "generation_seconds": summary["seconds"],
        "process_seconds": round(wall, 3),
        "impressions_per_second": round(summary["impressions"] / summary["seconds"], 1),
        # CPU time of the child: steadier than wall time on a shared machine
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "dataset_mib": round(size / 2**20, 1),
    }
    for key, value in figures.items():
        print(f"{key:24s} {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
