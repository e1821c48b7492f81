"""Ranking quality of newsdesk on the simulator, as a ratio of the oracle that knows the truth.

    benchmarks/simulator_quality.py --quick            # 3k users, 2 days, minutes
    benchmarks/simulator_quality.py                    # 100k users, 5k articles/day, 7 days
    benchmarks/simulator_quality.py --quick --json out.json [--embedder minilm-int8]

Protocol: simulate; train a bundle on the events before the last `--eval-days` (articles
published later are unknown to it and are upserted at the start of evaluation, as serving
would); then replay the held-out impressions in time order: each logged slate is ranked with
`Recommender.score` from a store that holds exactly the events before that impression (advanced
in 15-minute steps), and by the oracle (the simulator's true attraction = P(click | examined)).

Figures (newsdesk / oracle):
* AUC and nDCG@10 of the logged clicks (mean over impressions with a click and a non-click);
* expected clicks when the slate is displayed in each ranker's order (true click model,
  position bias included), overall and for articles in their first hour (cold start).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.evaluation import metrics as M
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import load_log, warm_store
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import load_recommender
from newsdesk.pipelines.train import TrainConfig, train
from newsdesk.simulation import SimulationConfig, World, simulate_to_dataset

STEP_S = 900.0


def cut_dataset(src: Path, dst: Path, cut: float) -> None:
    """Copy of a dataset with the impressions / interactions / articles before `cut`."""
    ds = Dataset(src)
    cut_us = int(cut * 1e6)
    with DatasetWriter(dst, source=ds.source) as w:
        for table, col in (("articles", "published_at"), ("impressions", "timestamp"),
                           ("interactions", "timestamp")):
            df = ds.scan(table).filter(pl.col(col).dt.epoch("us") < cut_us).collect()
            w.table(table, dedupe=False).write_table(df)
        w.table("histories", dedupe=False).write_table(ds.read("histories"))


def evaluate(sim_dir: Path, bundle: Path, cut: float, max_impressions: int,
             embedder_name: str) -> dict[str, float]:
    from newsdesk.content import make_embedder

    world = World.load(sim_dir)
    log = load_log(sim_dir)
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=cut)
    rec = load_recommender(bundle, store, embedder=make_embedder(embedder_name))
    new = [a for a in log.articles if a.article_id not in rec.ws.catalog.index]
    rec.upsert_articles(new)

    exp = log.exposures.filter(pl.col("ts") >= cut)
    qs = exp["q"].unique().sort().to_numpy()
    rng = np.random.default_rng(0)
    if len(qs) > max_impressions:
        qs = np.sort(rng.choice(qs, max_impressions, replace=False))
    exp = exp.join(pl.DataFrame({"q": qs}), on="q", how="semi").sort(["q", "pos"])
    art_ids = [a.article_id for a in log.articles]
    users = log.events.user_ids
    res: dict[str, list[float]] = {k: [] for k in (
        "auc_model", "auc_oracle", "ndcg_model", "ndcg_oracle")}
    exp_clicks = np.zeros(2)
    fresh_clicks = np.zeros(2)
    t_store = cut
    latencies = []
    for (_q,), grp in exp.group_by(["q"], maintain_order=True):
        t = float(grp["ts"][0])
        while t_store + STEP_S <= t:  # advance the store: events strictly before the step end
            warm_store(store, log, until=t_store + STEP_S, since=t_store)
            t_store += STEP_S
        uid = users[int(grp["ucode"][0])]
        slate = [art_ids[a] for a in grp["aidx"].to_list()]
        labels = grp["label"].to_numpy().astype(float)
        began = time.perf_counter()
        s_model = rec.score(RequestContext(user_id=uid, now=t), slate)
        latencies.append(time.perf_counter() - began)
        s_oracle = np.asarray(world.attraction([uid] * len(slate), slate, t), dtype=float)
        if 0 < labels.sum() < len(labels):
            res["auc_model"].append(M.auc(labels, s_model))
            res["auc_oracle"].append(M.auc(labels, s_oracle))
            res["ndcg_model"].append(M.ndcg(labels, s_model, 10))
            res["ndcg_oracle"].append(M.ndcg(labels, s_oracle, 10))
        age = t - world.article_published[world.article_index(slate)]
        first_hour = age < 3600.0
        for j, s in enumerate((s_model, s_oracle)):
            pos = np.empty(len(slate))
            pos[np.argsort(-s, kind="stable")] = np.arange(len(slate))
            e = world.examination(pos) * s_oracle
            exp_clicks[j] += e.sum()
            fresh_clicks[j] += e[first_hour].sum()
    out = {k: float(np.nanmean(v)) for k, v in res.items()}
    out["auc_ratio"] = out["auc_model"] / out["auc_oracle"]
    out["ndcg@10_ratio"] = out["ndcg_model"] / out["ndcg_oracle"]
    out["expected_clicks_ratio"] = float(exp_clicks[0] / exp_clicks[1])
    out["first_hour_clicks_ratio"] = float(fresh_clicks[0] / max(fresh_clicks[1], 1e-12))
    out["eval_impressions"] = len(qs)
    out["score_p50_ms"] = float(np.percentile(latencies, 50) * 1e3)
    out["score_p99_ms"] = float(np.percentile(latencies, 99) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--eval-days", type=float, default=0.5)
    ap.add_argument("--max-eval-impressions", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        sim = SimulationConfig(seed=1, n_users=3000, days=2.0, articles_per_day=150,
                               impressions_per_day=40_000, backlog_days=1.0)
        max_eval = args.max_eval_impressions or 4000
    else:
        sim = SimulationConfig(seed=1, n_users=100_000, days=7.0, articles_per_day=5000,
                               impressions_per_day=1_000_000, backlog_days=2.0)
        max_eval = args.max_eval_impressions or 30_000
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nd-simq-"))
    timings = {}
    t = time.perf_counter()
    simulate_to_dataset(sim, work / "sim")
    timings["simulate_s"] = time.perf_counter() - t
    cut = sim.end_unix - args.eval_days * 86400.0
    cut_dataset(work / "sim", work / "train", cut)
    t = time.perf_counter()
    cfg = TrainConfig.from_dict({"embedder": args.embedder,
                                 "embedding_cache_dir": str(work / "cache")})
    version = train(work / "train", work / "bundles", cfg)
    timings["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    figures = evaluate(work / "sim", work / "bundles" / version, cut, max_eval, args.embedder)
    timings["evaluate_s"] = time.perf_counter() - t
    manifest = json.loads((work / "bundles" / version / "manifest.json").read_text())
    result = {"benchmark": "simulator_quality", "quick": args.quick, "config": sim.to_dict(),
              "embedder": args.embedder, **figures, **{k: round(v, 2) for k, v in timings.items()},
              "systems": {"newsdesk": {"auc": figures["auc_model"],
                                       "ndcg@10": figures["ndcg_model"]},
                          "oracle": {"auc": figures["auc_oracle"],
                                     "ndcg@10": figures["ndcg_oracle"]}},
              "bundle_valid_metrics": manifest["metrics"].get("valid"),
              "targets": {"auc_ratio": 0.95, "ndcg@10_ratio": 0.90,
                          "first_hour_clicks_ratio": 0.8}}
    for k in ("auc_model", "auc_oracle", "auc_ratio", "ndcg_model", "ndcg_oracle",
              "ndcg@10_ratio", "expected_clicks_ratio", "first_hour_clicks_ratio",
              "eval_impressions", "score_p50_ms", "score_p99_ms"):
        print(f"{k:26s} {figures[k]:.4f}" if isinstance(figures[k], float) else
              f"{k:26s} {figures[k]}")
    print("timings", {k: round(v, 1) for k, v in timings.items()})
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
