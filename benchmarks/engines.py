"""Cost curves of the two engines: building train's training sets from 1M / 10M / 50M shown
items (simulated), seconds and peak memory per size per engine, plus a parity check.

    benchmarks/engines.py --quick                       # 1M shown items only
    benchmarks/engines.py                               # 1M, 10M, 50M
    benchmarks/engines.py --sizes 1e6 1e7 --json out.json

"Shown items" are slate rows (size / 10 slates of 10), simulated as benchmarks/train_cost.py
does (not timed). Each engine runs in a child process (`train.local_training_data` or the
Spark twin with its own local[N] session, `--driver-memory`, default 8g): the timed part is
the data steps of `train` (load, catalog, generators, query selection, point-in-time replay,
features) with the default TrainConfig (the ranker's sets capped at 200k + 50k impressions;
the replay reads every event). Peak memory is the largest summed RSS of the child's whole
process tree (the Spark JVM and its Python workers included), sampled every 0.2 s. A child
whose tree passes `--memory-limit-gib` (default 10: the machine is shared) is killed and
reported as out of memory instead of swapping the machine; so is one past `--timeout`.

Parity (on the smallest size): both engines' sets are compared row by row (rows_equal, the
largest absolute feature difference) and a bundle is trained from each; auc_diff is the
difference of their validation AUC (the ranker's mean per-impression AUC on the held-out last
15% of the log, replayed point-in-time).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

WORKER = """
import json, sys, time
from pathlib import Path
import numpy as np
from newsdesk.content import make_embedder
from newsdesk.pipelines.train import TrainConfig, local_training_data, train_from_data
engine, ds, out, memory = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
cfg = TrainConfig.from_dict({"embedder": "hashing", "engine": engine, "reference_requests": 0,
                             "spark": {"driver_memory": memory}})
emb = make_embedder("hashing")
t = time.perf_counter()
if engine == "spark":
    from newsdesk.pipelines.spark.engine import spark_training_data
    data = spark_training_data(ds, cfg, emb)
else:
    data = local_training_data(ds, cfg, emb)
seconds = time.perf_counter() - t
np.savez(out / f"{engine}.npz", **{f"{n}_{k}": v for n, s in data.sets.items()
                                    for k, v in zip("xyg", s)},
         **{f"{n}_key": r["row_key"] for n, r in data.rows.items()},
         **{f"{n}_pos": r["row_position"] for n, r in data.rows.items()})
version = train_from_data(ds, out / f"bundles-{engine}", cfg, data, emb)
m = json.loads((out / f"bundles-{engine}" / version / "manifest.json").read_text())
print(json.dumps({"seconds": seconds, "valid_auc": m["metrics"].get("valid", {}).get("auc"),
                  "rows": int(sum(len(s[1]) for s in data.sets.values()))}))
"""


def _tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of pid and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(parts[1]), []).append(int(d))
            rss[int(d)] = int(parts[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def run_engine(engine: str, ds: Path, out: Path, *, memory: str, limit_gib: float,
               timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    cmd = ["nice", "-n", "10", sys.executable, "-c", WORKER, engine, str(ds), str(out), memory]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, start_new_session=True)
    peak, killed = [0], [""]
    t0 = time.perf_counter()

    def watch() -> None:
        while proc.poll() is None:
            rss = _tree_rss(proc.pid)
            peak[0] = max(peak[0], rss)
            if rss > limit_gib * 2**30:
                killed[0] = f"out of memory: passed {limit_gib} GiB"
            elif time.perf_counter() - t0 > timeout:
                killed[0] = f"timeout: over {timeout:.0f} s"
            if killed[0]:
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: JVM included
                return
            time.sleep(0.2)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    stdout, _ = proc.communicate()
    th.join()
    res: dict[str, Any] = {"peak_gib": round(peak[0] / 2**30, 3)}
    if killed[0] or proc.returncode != 0:
        res["error"] = killed[0] or f"exit status {proc.returncode}"
        res["seconds"] = None
        return res
    r = json.loads(stdout.strip().splitlines()[-1])
    res.update(seconds=round(r["seconds"], 1), rows=r["rows"], valid_auc=r["valid_auc"])
    return res


def parity(out: Path, local: dict[str, Any], spark: dict[str, Any]) -> dict[str, Any]:
    a, b = np.load(out / "local.npz"), np.load(out / "spark.npz")
    rows_equal, diff = True, 0.0
    for n in ("train", "valid"):
        same = all(np.array_equal(a[f"{n}_{k}"], b[f"{n}_{k}"]) for k in ("y", "g", "key", "pos"))
        rows_equal &= same and a[f"{n}_x"].shape == b[f"{n}_x"].shape
        if a[f"{n}_x"].shape == b[f"{n}_x"].shape and len(a[f"{n}_x"]):
            xa, xb = a[f"{n}_x"].astype(np.float64), b[f"{n}_x"].astype(np.float64)
            rows_equal &= bool(np.array_equal(np.isnan(xa), np.isnan(xb)))
            diff = max(diff, float(np.nanmax(np.abs(np.nan_to_num(xa) - np.nan_to_num(xb)))))
    auc = (abs(local["valid_auc"] - spark["valid_auc"])
           if local.get("valid_auc") is not None and spark.get("valid_auc") is not None else None)
    return {"rows_equal": bool(rows_equal), "max_abs_feature_diff": diff, "auc_diff": auc,
            "local_valid_auc": local.get("valid_auc"), "spark_valid_auc": spark.get("valid_auc")}


def simulate(shown: int, work: Path) -> Path:
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    slates = max(1, shown // 10)
    days = 7.0
    sim = SimulationConfig(seed=5, n_users=max(2000, slates // 20), days=days,
                           articles_per_day=min(5000, max(200, slates // 200)),
                           impressions_per_day=round(slates / days), slate_size=10)
    ds = work / f"sim-{shown}"
    simulate_to_dataset(sim, ds)
    return ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--sizes", type=float, nargs="*", default=None)
    ap.add_argument("--engines", nargs="*", default=["local", "spark"])
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--memory-limit-gib", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args()
    sizes = [int(s) for s in (args.sizes or ([1e6] if args.quick else [1e6, 1e7, 5e7]))]
    systems: dict[str, dict[str, Any]] = {e: {} for e in args.engines}
    par: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="nd-engines-") as tmp:
        for shown in sizes:
            ds = simulate(shown, Path(tmp))
            out = Path(tmp) / f"out-{shown}"
            out.mkdir()
            key = f"{shown:.0e}".replace("+0", "").replace("+", "")
            for engine in args.engines:
                r = run_engine(engine, ds, out, memory=args.driver_memory,
                               limit_gib=args.memory_limit_gib, timeout=args.timeout)
                systems[engine][key] = r
                print(f"{shown:>11,} shown  {engine:6s} {r.get('seconds')!s:>8} s  "
                      f"peak {r['peak_gib']:.2f} GiB  {r.get('error', '')}", flush=True)
            both = {"local", "spark"} <= set(args.engines)
            if par is None and both and all("error" not in systems[e][key]
                                            for e in ("local", "spark")):
                par = parity(out, systems["local"][key], systems["spark"][key])
                par["size"] = key
                print(f"parity at {key}: {par}", flush=True)
            for engine in args.engines:
                for p in out.glob(f"{engine}.npz"):
                    p.unlink()
    ratios = {}
    for key in systems.get("local", {}):
        lo, sp = systems["local"][key], systems.get("spark", {}).get(key)
        if sp and lo.get("seconds") and sp.get("seconds"):
            ratios[key] = round(sp["seconds"] / lo["seconds"], 2)
    result = {"benchmark": "engines", "quick": args.quick, "cores": os.cpu_count(),
              "driver_memory": args.driver_memory, "memory_limit_gib": args.memory_limit_gib,
              "note": "shared 2-core machine (other jobs running): seconds are noisy; compare "
                      "the engines within one run",
              "systems": systems, "spark_over_local_seconds": ratios, "parity": par}
    print(json.dumps({"parity": par, "spark_over_local_seconds": ratios}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
