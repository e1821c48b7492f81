"""How fast the online store loads from a dataset (`newsdesk store load`), per backend.

    benchmarks/store_bootstrap.py [--quick] [--json FILE] [--work DIR] [--dataset DIR]

The dataset is the serve_load state (full: 1M users, 8 days, 10,000 articles/day, 20,000
impressions/day, seed 7; --quick: 20k users), simulated once into --work, or any dataset given
with --dataset. For each backend (the embedded memory store with its SQLite snapshot, and Redis
on a redis-server this script starts on 127.0.0.1) it runs `newsdesk store load` as a
subprocess twice: the first load (wall time of the whole command, the bootstrap's own time and
phases, peak RSS of the command) and the second, which must load nothing (idempotence).
Target: the full state in under 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PY = sys.executable
TARGET_S = 120.0


def simulate(work: Path, quick: bool) -> Path:
    dataset = work / "dataset"
    if not (dataset / "manifest.json").exists():
        scale = (["--users", "20000", "--days", "8", "--articles-per-day", "1250",
                  "--impressions-per-day", "5000"] if quick else
                 ["--users", "1000000", "--days", "8", "--articles-per-day", "10000",
                  "--impressions-per-day", "20000"])
        subprocess.run([PY, "-m", "newsdesk.cli.main", "simulate", "--seed", "7", *scale,
                        "--out", str(dataset)], check=True, stdout=subprocess.DEVNULL)
    return dataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load(dataset: Path, target: list[str], report: Path) -> dict[str, Any]:
    """One `newsdesk store load` under /usr/bin/time when present (peak RSS)."""
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    out = subprocess.run([*timer, PY, "-m", "newsdesk.cli.main", "store", "load", str(dataset),
                          *target, "--json", str(report)], capture_output=True, text=True,
                         check=True)
    wall = time.perf_counter() - started
    body = json.loads(report.read_text())
    rss_kib = out.stderr.strip().splitlines()[-1] if timer else ""
    return {"wall_s": wall, "bootstrap_s": body["seconds"], "phases_s": body["phases_s"],
            "status": body["status"], "users": body["users"], "clicks": body["clicks"],
            "impressions": body["impressions"], "articles": body["articles"],
            "history_clicks": body["history_clicks"],
            "peak_rss_gib": int(rss_kib) / 2**20 if rss_kib.isdigit() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--dataset", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / (
        f"newsdesk-store-bootstrap-{'quick' if args.quick else 'full'}")
    work.mkdir(parents=True, exist_ok=True)
    dataset = args.dataset or simulate(work, args.quick)
    systems: dict[str, Any] = {}

    state = work / "memory-state"
    shutil.rmtree(state, ignore_errors=True)
    target = ["--state-dir", str(state)]
    systems["memory"] = {"first": load(dataset, target, work / "r1.json"),
                         "second": load(dataset, target, work / "r2.json")}

    if shutil.which("redis-server"):
        port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"],
                                 stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            target = ["--redis-url", f"redis://127.0.0.1:{port}/0"]
            systems["redis"] = {"first": load(dataset, target, work / "r3.json"),
                                "second": load(dataset, target, work / "r4.json")}
        finally:
            redis.terminate()
            redis.wait(10)

    result = {"benchmark": "store_bootstrap", "quick": args.quick, "dataset": str(dataset),
              "systems": systems, "target_s": TARGET_S,
              "met": all(s["first"]["wall_s"] < TARGET_S and s["second"]["status"] ==
                         "up_to_date" for s in systems.values())}
    for name, s in systems.items():
        f = s["first"]
        print(f"{name:<7} first load {f['wall_s']:6.1f} s (bootstrap {f['bootstrap_s']:.1f} s, "
              f"{f['users']:,} users, {f['impressions']:,} impressions, peak RSS "
              f"{f['peak_rss_gib'] or float('nan'):.2f} GiB); second load: "
              f"{s['second']['status']} in {s['second']['wall_s']:.1f} s")
    print(f"target: first load < {TARGET_S:.0f} s, second loads nothing -> "
          f"{'met' if result['met'] else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
