"""Micro-benchmark of the personalised model call, in-process: time per call and per stage.

    benchmarks/recommend_path.py [--quick] [--json FILE] [--work DIR] [--users N]
                                 [--ranker lightgbm|compiled|both] [--baseline-src DIR]

1. Builds (or reuses, in --work) the serve_load state: a simulated world (full: 1M users, 8 days,
   10k articles/day, ~11k live at the serving time; --quick: 20k users, 1250 articles/day), a
   bundle trained on it with the hashing embedder, and the online store seeded with every
   user's history and logged clicks (`serve_load.build_state`).
2. Loads the bundle in-process as the server does (`load_recommender`), once per ranker
   (`lightgbm`: the plain Booster, the fallback; `compiled`: lleaves trees), on the same store.
3. Calls `recommend` for N random known users at the serving time (k=20, front_page),
   alternating the systems in blocks of BLOCK users, so that a busy moment of the shared
   machine hits both alike while each keeps its caches warm as a server would (user by user,
   the two recommenders' separate catalogs would evict each other), and reports median / p90
   / p99 ms per call and the median ms of each stage (candidates, features, score, rerank)
   read from the recommender's `stage_timer` hook.
4. Checks that the systems return the same articles with scores within 1e-6.
4b. Real-time parts (issue 14): before measuring, every live article's online co-visitation
   row is filled with `--covisit-fill` random live neighbours (default 50 = the store's top_k:
   the bounded worst case of the per-request read), and `--realtime both` adds a `_static`
   twin of each system with the online co-clicks and fold-in switched off, on the same store,
   so the delta of the real-time parts is measured within one run; the fold-in's refresh (once
   per live set and 5 minutes per process, not per request) is timed apart.
5. With --baseline-src (e.g. the `src` of a main checkout), runs the same measurement of that
   code's plain LightGBM path in a subprocess just before and just after this one (an A-B-A
   bracket against the drift of a shared machine) and reports this run's systems against it.

Figures come from a shared 2-core machine: compare systems within one run (the ratios), not
across runs.
"""

from __future__ import annotations

import os

# the server runs BLAS single-threaded (serve_load starts it so); do the same before numpy loads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from newsdesk.content import make_embedder  # noqa: E402
from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.models.base import RequestContext  # noqa: E402
from newsdesk.models.bundle import load_recommender, read_manifest, resolve_bundle  # noqa: E402
from serve_load import build_state  # noqa: E402

TARGET_MEDIAN_MS = 1.0
BLOCK = 100  # calls of one system before switching to the other
STAGES = ("candidates", "features", "score", "rerank")


class _Samples:
    """A StageTimer without importing it (so the benchmark also runs against older code)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {s: [] for s in STAGES}

    def record(self, stage: str, seconds: float) -> None:
        self.samples.setdefault(stage, []).append(seconds)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p)) if values else float("nan")


def private_mib() -> dict[str, float]:
    """This process's anonymous (private, written) and file-backed memory in MiB (Linux): what
    a second worker process would duplicate vs what it shares through the page cache."""
    out = {"anonymous_mib": float("nan"), "file_rss_mib": float("nan")}
    try:
        fields = {}
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split()[:2]
            fields[name.rstrip(":")] = int(value) / 1024
        out = {"anonymous_mib": fields["Anonymous"],
               "file_rss_mib": fields["Rss"] - fields["Anonymous"]}
    except (OSError, KeyError, ValueError):
        pass
    return out


def generator_times(rec: Any, ctxs: list[RequestContext]) -> dict[str, float]:
    """Median thread-CPU ms of the user view and of each generator's `propose`, run in
    sequence per user as a request runs them (each sees the caches the previous left)."""
    times: dict[str, list[float]] = {}
    for ctx in ctxs:
        t = time.thread_time()
        view = rec.ws.view(ctx.user_id, ctx.now)
        times.setdefault("view", []).append(time.thread_time() - t)
        for g in rec.generators:
            t = time.thread_time()
            g.propose(view, rec.quotas.get(g.name, 100))
            times.setdefault(g.name, []).append(time.thread_time() - t)
    return {k: round(1000 * pct(v, 50), 4) for k, v in times.items()}


def fill_covisits(store: MemoryOnlineStore, live_ids: list[str], k: int, now: float,
                  seed: int) -> int:
    """Give every live article k random live co-visitation neighbours (0 when this code's
    store has no online co-visitation); returns the pairs written."""
    if k <= 0 or not hasattr(store, "merge_coclicks"):
        return 0
    rng = random.Random(seed)
    pairs = [(a, b, now - rng.uniform(60.0, 86_400.0)) for a in live_ids
             for b in rng.sample(live_ids, min(k, len(live_ids))) if a != b]
    store.merge_coclicks(pairs)
    return len(pairs)


def set_static(rec: Any) -> None:
    """Switch the real-time parts off (online co-clicks, fold-in)."""
    rec.coclick.online_weight = 0.0
    rec.cf.online_foldin = False


def load(bundle: Path, store: MemoryOnlineStore, embedder: Any, ranker: str) -> Any:
    kwargs = {}
    if "ranker" in inspect.signature(load_recommender).parameters:
        kwargs["ranker"] = ranker
    elif ranker != "lightgbm":
        raise SystemExit(f"this code's load_recommender has no ranker={ranker!r}")
    t = time.perf_counter()
    rec = load_recommender(bundle, store, embedder=embedder, **kwargs)
    return rec, time.perf_counter() - t


def run_baseline(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """This benchmark's lightgbm system on the code in --baseline-src, in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        cmd = [sys.executable, __file__, "--work", str(work), "--ranker", "lightgbm",
               "--covisit-fill", str(args.covisit_fill),
               "--seed", str(args.seed), "--json", str(out), "--with-items"]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--users", str(args.users)] if args.users else []
        cmd += ["--generators", str(args.generators)]
        env = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="scaled-down state, 500 users")
    ap.add_argument("--json", type=Path, help="write every figure to this JSON file")
    ap.add_argument("--work", type=Path, help="state directory (reused if present)")
    ap.add_argument("--users", type=int, help="calls per system (default 3000, quick 500)")
    ap.add_argument("--ranker", choices=("lightgbm", "compiled", "both"), default="both")
    ap.add_argument("--realtime", choices=("on", "both"), default="on",
                    help="both: also each system with the real-time parts off (_static)")
    ap.add_argument("--covisit-fill", type=int, default=50,
                    help="online co-visitation neighbours given to every live article")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generators", type=int, default=300, metavar="N",
                    help="CPU time of the view and of each candidate generator over N users "
                         "(0: skip)")
    ap.add_argument("--with-items", action="store_true",
                    help="also write every call's (article id, score) items to the JSON")
    ap.add_argument("--baseline-src", type=Path,
                    help="measure this source tree's lightgbm path too (subprocess, A-B-A)")
    args = ap.parse_args()
    n_calls = args.users or (500 if args.quick else 3000)
    load_start = list(os.getloadavg())  # a shared machine skews every figure: record it
    work = args.work or Path(tempfile.mkdtemp(prefix="recommend-path-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"building state in {work} ({'quick' if args.quick else 'full'}) ...", flush=True)
    state = build_state(work, args.quick, "hashing")
    print(f"  {state['articles']} articles ({state['live_articles']} live), "
          f"{len(state['users'])} users with history; {state['timings']}", flush=True)

    bundle = resolve_bundle(state["bundles"])
    manifest = read_manifest(bundle)
    hl = float(manifest["config"]["features"]["half_life_hours"])
    t = time.perf_counter()
    # loaded from the snapshot and never closed, so the snapshot is not rewritten
    store = MemoryOnlineStore(half_life_hours=hl, persist_path=state["state"] / "online.db")
    store_load_s = time.perf_counter() - t
    embedder = make_embedder(str(manifest["embedder"]["short_name"]))
    names = ["lightgbm", "compiled"] if args.ranker == "both" else [args.ranker]
    if args.realtime == "both":
        names = [n + suffix for n in names for suffix in ("", "_static")]
    covisit_pairs = fill_covisits(store, state["live_ids"], args.covisit_fill,
                                  float(state["clock_start"]), args.seed)
    mem_before = private_mib()
    systems: dict[str, Any] = {}
    for name in names:
        rec, load_s = load(bundle, store, embedder, name.removesuffix("_static"))
        if name.endswith("_static"):
            set_static(rec)
        systems[name] = {"rec": rec, "load_s": load_s, "timer": _Samples(), "calls": [], "cpu": [],
                         "ranker_class": type(rec.ranker).__name__}
        print(f"  loaded {name} ({type(rec.ranker).__name__}) in {load_s:.2f} s", flush=True)

    now = float(state["clock_start"])
    users = random.Random(args.seed).sample(state["users"], min(n_calls, len(state["users"])))
    ctxs = [RequestContext(user_id=u, now=now, surface="front_page", k=20) for u in users]
    for s in systems.values():  # warm the per-live-set caches and the first-call paths
        for ctx in ctxs[:50]:
            s["rec"].recommend(ctx)
        s["rec"].stage_timer = s["timer"]
    # memory of the loaded, warmed bundles (all systems of this run together, the store not
    # counted): anonymous memory is private to each worker process, file pages are shared
    memory = {k: round(v - mem_before[k], 1) for k, v in private_mib().items()}
    print(f"  bundle memory ({'+'.join(names)}): {memory}", flush=True)
    foldin_refresh_ms = None
    first = systems[names[0]]["rec"]
    if hasattr(first.cf, "fresh_vectors"):  # the fold-in's refresh, once per bucket
        live = first.ws.live_set(now).indices
        t = time.perf_counter()
        fresh_idx, _ = first.cf._compute_fresh(live, now)
        foldin_refresh_ms = round(1000 * (time.perf_counter() - t), 3)
        print(f"  fold-in refresh: {foldin_refresh_ms} ms for {len(fresh_idx)} fresh live "
              f"articles with vectors; co-visitation pairs filled: {covisit_pairs}", flush=True)
    baseline_runs = [run_baseline(args, work)] if args.baseline_src else []
    results: dict[str, list[Any]] = {name: [] for name in systems}
    for lo in range(0, len(ctxs), BLOCK):
        for name, s in systems.items():
            for ctx in ctxs[lo: lo + BLOCK]:
                c, t = time.thread_time(), time.perf_counter()
                out = s["rec"].recommend(ctx)
                s["calls"].append(time.perf_counter() - t)
                s["cpu"].append(time.thread_time() - c)
                results[name].append(out)

    report: dict[str, Any] = {}
    for name, s in systems.items():
        ms = [1000 * x for x in s["calls"]]
        stages = {st: {"median_ms": round(1000 * pct(v, 50), 4),
                       "mean_ms": round(1000 * float(np.mean(v)), 4)}
                  for st, v in s["timer"].samples.items() if v}  # none: code without the hook
        report[name] = {
            "ranker_class": s["ranker_class"], "load_s": round(s["load_s"], 3),
            "calls": len(ms), "median_ms": round(pct(ms, 50), 4), "p90_ms": round(pct(ms, 90), 4),
            "p99_ms": round(pct(ms, 99), 4), "mean_ms": round(float(np.mean(ms)), 4),
            # CPU time of the calling thread: less inflated than wall time when other
            # processes share the cores (cache contention still shows)
            "cpu_median_ms": round(pct([1000 * x for x in s["cpu"]], 50), 4),
            "cpu_p99_ms": round(pct([1000 * x for x in s["cpu"]], 99), 4),
            "stages": stages,
            "items_per_call": round(float(np.mean([len(r) for r in results[name]])), 2),
        }
        st = " ".join(f"{k}={v['median_ms']:.3f}" for k, v in stages.items())
        print(f"{name:>9}: median {report[name]['median_ms']:.3f} ms, p90 "
              f"{report[name]['p90_ms']:.3f}, p99 {report[name]['p99_ms']:.3f} "
              f"(CPU median {report[name]['cpu_median_ms']:.3f}, p99 "
              f"{report[name]['cpu_p99_ms']:.3f}); "
              f"stage medians (ms): {st}", flush=True)
    agreement = None
    if len(systems) == 2:
        a, b = (results[n] for n in names)
        same_ids = sum([x.article_id for x in ra] == [x.article_id for x in rb]
                       for ra, rb in zip(a, b, strict=True))
        diff = max((abs(x.score - y.score) for ra, rb in zip(a, b, strict=True)
                    for x, y in zip(ra, rb, strict=False)), default=0.0)
        agreement = {"same_ranking_share": same_ids / len(a), "max_abs_score_diff": diff}
        ratio = report[names[0]]["median_ms"] / report[names[1]]["median_ms"]
        print(f"  {names[1]} vs {names[0]}: median x{1 / ratio:.3f} "
              f"({ratio:.2f}x faster); same rankings {same_ids}/{len(a)}, max |score diff| "
              f"{diff:.2e}")
    if args.baseline_src:
        baseline_runs.append(run_baseline(args, work))
        medians = [b["systems"]["lightgbm"]["median_ms"] for b in baseline_runs]
        base = {**baseline_runs[0]["systems"]["lightgbm"], "src": str(args.baseline_src),
                "median_ms_runs": medians, "median_ms": round(float(np.mean(medians)), 4),
                "load_average": [b["load_average_at_start"] for b in baseline_runs]}
        cpu = [b["systems"]["lightgbm"]["cpu_median_ms"] for b in baseline_runs]
        base["cpu_median_ms_runs"] = cpu
        base["cpu_median_ms"] = round(float(np.mean(cpu)), 4)
        for r in report.values():
            r["speedup_vs_baseline_median"] = round(base["median_ms"] / r["median_ms"], 3)
            r["cpu_speedup_vs_baseline_median"] = round(
                base["cpu_median_ms"] / r["cpu_median_ms"], 3)
        print(f" baseline: median {base['median_ms']:.3f} ms (runs before/after: {medians}; "
              f"CPU {cpu}); " + ", ".join(
                  f"{n} x{r['speedup_vs_baseline_median']:.2f} faster "
                  f"(CPU x{r['cpu_speedup_vs_baseline_median']:.2f})"
                  for n, r in report.items()), flush=True)
        base["bundle_memory_mib"] = baseline_runs[0].get("bundle_memory_mib")
        report["baseline_lightgbm"] = base
        # the same users in the same order: the baseline's answers against this run's
        want = baseline_runs[0]["items"]["lightgbm"]
        for n in names:
            got = [[(x.article_id, x.score) for x in r] for r in results[n]]
            same = sum([a for a, _ in g] == [a for a, _ in w] for g, w in zip(got, want,
                                                                             strict=True))
            diff = max((abs(a[1] - b[1]) for g, w in zip(got, want, strict=True)
                        for a, b in zip(g, w, strict=False)), default=0.0)
            report[n]["vs_baseline"] = {"same_ranking_share": same / len(want),
                                        "max_abs_score_diff": diff}
            print(f"  {n} vs baseline: same rankings {same}/{len(want)}, max |score diff| "
                  f"{diff:.2e}", flush=True)
    best = min((r for n, r in report.items() if n != "baseline_lightgbm"),
               key=lambda r: r["median_ms"])
    summary = {
        "benchmark": "recommend_path", "quick": args.quick,
        "load_average_at_start": load_start, "load_average_at_end": list(os.getloadavg()),
        "state": {"articles": state["articles"], "live_articles": state["live_articles"],
                  "users_with_history": len(state["users"]), "timings": state["timings"],
                  "store_load_s": round(store_load_s, 2), "bundle": str(bundle)},
        "bundle_memory_mib": {**memory, "systems": names},
        "realtime": {"covisit_fill": args.covisit_fill, "covisit_pairs": covisit_pairs,
                     "foldin_refresh_ms": foldin_refresh_ms},
        "request": {"k": 20, "surface": "front_page", "now": now, "calls_per_system": n_calls},
        "systems": report,
        "agreement": agreement,
        "targets": {"median_model_call_ms": {"target": TARGET_MEDIAN_MS,
                                             "measured": best["median_ms"],
                                             "met": best["median_ms"] <= TARGET_MEDIAN_MS}},
    }
    if args.generators:
        for name, s in systems.items():
            s["rec"].stage_timer = None
            report[name]["candidates_cpu_median_ms"] = generator_times(
                s["rec"], ctxs[: args.generators])
            print(f"  {name} candidates, CPU median ms: "
                  f"{report[name]['candidates_cpu_median_ms']}", flush=True)
    if args.with_items:
        summary["items"] = {n: [[(x.article_id, x.score) for x in r] for r in results[n]]
                            for n in names}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
