"""LLM re-ranking of the ranker's top N against the ranker alone: simulator and MIND sample.

    benchmarks/llm_rerank.py --quick [--json FILE] [--budget S] [--top-n N]
        [--sim-workdir DIR]   # a simulated world + bundle to reuse (benchmarks/cold_start.py's)
        [--data PATH]         # the MIND sample (default ../shared/data/mind-sample)

Simulator (true click model): `--requests` readers with history ask for a front page of 10 at
the end of the log; the newsdesk ranker's slate is shown as is, or with its top N re-ordered by
the local LLM (SmolLM2-135M, titles of the candidates and of the reader's recent reads, prompt
rerank.v1). Figure: expected clicks of the top N under the TRUE position-biased click model
(and the oracle's order of the same N items as the ceiling).

MIND sample (logged clicks): newsdesk trained on the days before the last (as
benchmarks/mind_replay.py), its store warmed with the log before the last day; for
`--impressions` impressions of the last day, the ranker orders the logged candidates; the LLM
re-orders the ranker's top N. Figures: nDCG@N and MRR of the logged clicks among those N
(impressions whose top N holds no click score 0 in both).

Both report: how often the LLM's order was used (`applied`), why not (timeout / invalid /
error), and the latency per call (p50 / p95). The budget is the stage's hard limit. The
machine is shared: latencies are inflated; compare quality within the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "mind-sample"


def _latency(res: list[Any]) -> dict[str, Any]:
    lat = [r.latency_s for r in res]
    reasons: dict[str, int] = {}
    for r in res:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    # an applied answer that is the given order changes nothing: count it apart
    identity = sum(r.applied and r.order == sorted(r.order) for r in res)
    return {"calls": len(res), "applied": float(np.mean([r.applied for r in res])),
            "applied_but_unchanged": identity,
            "reasons": reasons, "latency_p50_s": float(np.percentile(lat, 50)),
            "latency_p95_s": float(np.percentile(lat, 95))}


def simulator_part(reranker: Any, workdir: Path, n_requests: int, top_n: int, seed: int
                   ) -> dict[str, Any]:
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.features.training_log import load_log, warm_store
    from newsdesk.models.base import RequestContext
    from newsdesk.models.bundle import load_recommender
    from newsdesk.simulation import World

    world = World.load(workdir / "sim")
    log = load_log(workdir / "sim")
    bundle = sorted((workdir / "bundles").glob("*/manifest.json"))[-1].parent
    t0 = log.time_range[1] + 60.0
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=t0)
    rec = load_recommender(bundle, store)
    cat = rec.ws.catalog
    ev = log.events
    counts = np.bincount(ev.click_user, minlength=len(ev.user_ids))
    rng = np.random.default_rng(seed)
    users = rng.choice(np.flatnonzero(counts >= 3), n_requests, replace=False)
    pos = np.arange(top_n)
    exp = {"ranker": [], "llm": [], "oracle": []}
    results = []
    for j, u in enumerate(users.tolist()):
        uid = ev.user_ids[u]
        t = t0 + 30.0 * j
        items = rec.recommend(RequestContext(user_id=uid, now=t, k=10))[:top_n]
        if len(items) < top_n:
            continue
        ids = [it.article_id for it in items]
        titles = [cat.titles[cat.index[a]] for a in ids]
        read = [cat.titles[cat.index[c.article_id]] for c in store.user_clicks(uid, limit=5)
                if c.article_id in cat.index]
        new, res = reranker.apply(ids, titles, read)
        results.append(res)
        widx = world.user_index(uid)
        attraction = world.attraction(widx, world.article_index(ids), t)
        by_id = dict(zip(ids, attraction.tolist(), strict=True))
        exam = world.examination(pos)
        exp["ranker"].append(float((exam * attraction).sum()))
        exp["llm"].append(float((exam * np.array([by_id[a] for a in new])).sum()))
        exp["oracle"].append(float((exam * np.sort(attraction)[::-1]).sum()))
    base = np.array(exp["ranker"])
    diff = np.array(exp["llm"]) - base
    boots = np.random.default_rng(seed).integers(0, len(diff), (2000, len(diff)))
    ratios = (base[boots] + diff[boots]).mean(1) / base[boots].mean(1)
    return {
        "requests": len(base),
        "systems": {
            "ranker": {"expected_clicks_top_n": float(base.mean())},
            "ranker+llm": {"expected_clicks_top_n": float(np.mean(exp["llm"])),
                           "ratio_to_ranker": float(np.mean(exp["llm"]) / base.mean()),
                           "ratio_ci95": [float(np.percentile(ratios, 2.5)),
                                          float(np.percentile(ratios, 97.5))],
                           **_latency(results)},
            "oracle_order": {"expected_clicks_top_n": float(np.mean(exp["oracle"]))},
        },
    }


def _ndcg(labels: np.ndarray) -> float:
    if labels.sum() == 0:
        return 0.0
    disc = 1.0 / np.log2(np.arange(2, len(labels) + 2))
    ideal = np.sort(labels)[::-1]
    return float((labels * disc).sum() / (ideal * disc).sum())


def _mrr(labels: np.ndarray) -> float:
    hits = np.flatnonzero(labels)
    return float(1.0 / (hits[0] + 1)) if len(hits) else 0.0


def mind_part(reranker: Any, data: Path, n_imp: int, top_n: int, seed: int) -> dict[str, Any]:
    import polars as pl

    from mind_replay import _newsdesk_pipeline
    from newsdesk.data.dataset import Dataset
    from newsdesk.data.importers import run_import
    from newsdesk.evaluation.replay import day_bounds
    from newsdesk.features.training_log import load_log, warm_store
    from newsdesk.models.base import RequestContext

    work = Path(tempfile.mkdtemp(prefix="nd-llm-rerank-mind-"))
    run_import("mind", data, work / "dataset", skip_invalid=True, progress=False)
    ds = Dataset(work / "dataset")
    test_start, _ = day_bounds(ds)[-1]
    model, store, why = _newsdesk_pipeline(work / "dataset", work, test_start, "minilm-int8",
                                           True)
    if model is None:
        return {"skipped": why}
    log = load_log(work / "dataset")
    warm_store(store, log, until=test_start)
    cat = model.ws.catalog
    # the last day's articles are new to the bundle: upserted (embedded) as serving would
    model.upsert_articles([a for a in log.articles if a.article_id not in cat.index])
    imps = (ds.scan("impressions").filter(pl.col("timestamp").dt.epoch("us") >= int(
        test_start * 1e6)).collect())
    clicks = ds.read("interactions").filter(pl.col("type") == "click")
    clicked = {(r[0], r[1]) for r in clicks.select("request_id", "article_id").iter_rows()} \
        if "request_id" in clicks.columns else set()
    rows = imps.sample(fraction=1.0, shuffle=True, seed=seed).iter_rows(named=True)
    scores: dict[str, list[float]] = {"ranker_ndcg": [], "llm_ndcg": [], "ranker_mrr": [],
                                      "llm_mrr": []}
    results = []
    for row in rows:
        if len(results) >= n_imp:
            break
        cands = [a for a in row["article_ids"] if a in cat.index]
        labels = {a: (row["request_id"], a) in clicked for a in cands}
        if len(cands) < top_n or not any(labels.values()):
            continue
        t = row["timestamp"].timestamp()
        s = model.score(RequestContext(user_id=row["user_id"], now=t), cands)
        top = [cands[i] for i in np.argsort(-s, kind="stable")[:top_n]]
        read = [cat.titles[cat.index[c.article_id]]
                for c in store.user_clicks(row["user_id"], limit=5) if c.article_id in cat.index]
        new, res = reranker.apply(top, [cat.titles[cat.index[a]] for a in top], read)
        results.append(res)
        lab_r = np.array([labels[a] for a in top], dtype=float)
        lab_l = np.array([labels[a] for a in new], dtype=float)
        scores["ranker_ndcg"].append(_ndcg(lab_r))
        scores["llm_ndcg"].append(_ndcg(lab_l))
        scores["ranker_mrr"].append(_mrr(lab_r))
        scores["llm_mrr"].append(_mrr(lab_l))
    if not results:
        return {"skipped": "no last-day impression with a logged click among known articles"}
    return {
        "impressions": len(results), "note": "nDCG/MRR within the ranker's top N",
        "systems": {
            "ranker": {f"ndcg@{top_n}": float(np.mean(scores["ranker_ndcg"])),
                       "mrr": float(np.mean(scores["ranker_mrr"]))},
            "ranker+llm": {f"ndcg@{top_n}": float(np.mean(scores["llm_ndcg"])),
                           "mrr": float(np.mean(scores["llm_mrr"])), **_latency(results)},
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--budget", type=float, default=60.0,
                    help="hard budget per call, seconds (offline evaluation: generous)")
    ap.add_argument("--top-n", type=int, default=5)
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--impressions", type=int, default=None)
    ap.add_argument("--sim-workdir", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--parts", default="sim,mind", help="comma-separated: sim, mind")
    args = ap.parse_args()
    from newsdesk.llm.local import LocalProvider
    from newsdesk.llm.rerank import LLMReranker

    n_req = args.requests or (20 if args.quick else 200)
    n_imp = args.impressions or (20 if args.quick else 200)
    provider = LocalProvider("smollm2-135m")
    reranker = LLMReranker(provider, top_n=args.top_n, budget_s=args.budget)
    result: dict[str, Any] = {"benchmark": "llm_rerank", "quick": args.quick,
                              "model": provider.model, "top_n": args.top_n,
                              "budget_s": args.budget, "note": "shared 2-core machine"}
    began = time.perf_counter()
    parts = set(args.parts.split(","))
    sim_dir = args.sim_workdir
    if "sim" not in parts:
        result["simulator"] = {"skipped": "--parts", "systems": {}}
    elif sim_dir is None:
        sim_dir = Path(tempfile.mkdtemp(prefix="nd-llm-rerank-sim-"))
        from newsdesk.pipelines.train import TrainConfig, train
        from newsdesk.simulation import SimulationConfig, simulate_to_dataset

        simulate_to_dataset(SimulationConfig(seed=7, n_users=3000, days=2.0,
                                             articles_per_day=150, impressions_per_day=30_000,
                                             backlog_days=1.0, slate_size=10), sim_dir / "sim")
        train(sim_dir / "sim", sim_dir / "bundles", TrainConfig.from_dict({"embedder": "minilm"}))
    if "sim" in parts:
        result["simulator"] = simulator_part(reranker, sim_dir, n_req, args.top_n, args.seed)
        print("simulator", json.dumps(result["simulator"]["systems"], indent=1), flush=True)
    if "mind" not in parts:
        result["mind"] = {"skipped": "--parts"}
    elif (args.data / "behaviors.tsv").is_file():
        result["mind"] = mind_part(reranker, args.data.resolve(), n_imp, args.top_n, args.seed)
        print("mind", json.dumps(result["mind"].get("systems", result["mind"]), indent=1))
    else:
        result["mind"] = {"skipped": f"no MIND data at {args.data}"}
    result["seconds"] = round(time.perf_counter() - began, 1)
    # the house pattern: one "systems" object per compared system, both data sets in it
    sim_sys = result["simulator"]["systems"]
    mind_sys = result["mind"].get("systems", {})
    result["systems"] = {
        name: {**{f"sim_{k}": v for k, v in sim_sys.get(name, {}).items()},
               **{f"mind_{k}": v for k, v in mind_sys.get(name, {}).items()}}
        for name in ("ranker", "ranker+llm")}
    provider.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
