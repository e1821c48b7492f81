"""MovieLens 100K top-K benchmark: newsdesk's hybrid re-ranker vs most-popular, tuned ALS, EASE.

    python benchmarks/movielens.py [--data PATH] [--quick] [--json FILE] [--report PREFIX]

Protocol: per-user temporal split (each user's last 20% of ratings by time are test), test
positives are ratings >= 4, items the user rated in train are excluded, every other item is
ranked (full catalog). EASE's lambda and ALS's factors / regularization / iterations / alpha are
tuned by grid search on a validation split carved from the TRAINING data the same way (each
user's last 20% of train); the hybrid's LambdaRank ranker is trained on that same validation
split. Figures: nDCG@10, recall@10, hit@10 (means over test users with a positive), paired
bootstrap intervals of hybrid minus each baseline, and beyond-accuracy summaries.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's advice, before numpy loads

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "movielens-100k"
K = 10


def load(path: Path) -> tuple[pl.DataFrame, int, int, np.ndarray | None]:
    """Ratings as (user, item, rating, ts) with 0-based indices, plus item genre flags."""
    if (path / "u.data").is_file():
        raw = pl.read_csv(path / "u.data", separator="\t", has_header=False,
                          new_columns=["u", "i", "rating", "ts"])
    elif (path / "ratings.csv").is_file():
        raw = pl.read_csv(path / "ratings.csv").rename(
            {"userId": "u", "movieId": "i", "timestamp": "ts"})
    else:
        raise SystemExit(f"no u.data or ratings.csv in {path}; pass --data PATH")
    users = raw["u"].unique().sort()
    items = raw["i"].unique().sort()
    umap = dict(zip(users.to_list(), range(len(users)), strict=True))
    imap = dict(zip(items.to_list(), range(len(items)), strict=True))
    df = pl.DataFrame({
        "user": [umap[u] for u in raw["u"].to_list()],
        "item": [imap[i] for i in raw["i"].to_list()],
        "rating": raw["rating"].cast(pl.Float64),
        "ts": raw["ts"].cast(pl.Float64),
    })
    genres = None
    if (path / "u.item").is_file():
        genres = np.zeros((len(items), 19), dtype=np.float32)
        for line in (path / "u.item").read_text(encoding="latin-1").splitlines():
            parts = line.split("|")
            if len(parts) >= 24 and int(parts[0]) in imap:
                genres[imap[int(parts[0])]] = [float(x) for x in parts[5:24]]
    elif (path / "movies.csv").is_file():
        movies = pl.read_csv(path / "movies.csv")
        names = sorted({g for gs in movies["genres"].to_list() for g in gs.split("|")})
        genres = np.zeros((len(items), len(names)), dtype=np.float32)
        for mid, gs in movies.select("movieId", "genres").iter_rows():
            if mid in imap:
                for g in gs.split("|"):
                    genres[imap[mid], names.index(g)] = 1.0
    return df, len(users), len(items), genres


def grid(**axes: list) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*axes.values())]


def run(data: Path, quick: bool, seed: int) -> dict:
    from newsdesk.evaluation.bootstrap import compare_systems
    from newsdesk.evaluation.topk import beyond_accuracy, evaluate_topk, per_user_temporal_split
    from newsdesk.models.hybrid_cf import (
        ALSScorer,
        EASEScorer,
        HybridCF,
        interaction_matrix,
        relevant_sets,
        top_k_unseen,
        tune,
    )

    t_start = time.perf_counter()
    df, n_users, n_items, genres = load(data)
    train, test = per_user_temporal_split(df, 0.2, user="user", item="item", ts="ts")
    test_rel = relevant_sets(test, 4.0)
    eval_users = np.array(sorted(u for u, r in test_rel.items() if r), dtype=np.int64)

    # hyper-parameters are tuned on a validation split carved from train, never on test
    fit_part, val_part = per_user_temporal_split(train, 0.2, user="user", item="item", ts="ts")
    X_fit = interaction_matrix(fit_part, n_users, n_items)
    val_rel = relevant_sets(val_part, 4.0)
    timings = {}
    t0 = time.perf_counter()
    ease_grid = grid(l2=[50.0, 200.0, 500.0, 1000.0] if quick else
                     [25.0, 50.0, 100.0, 200.0, 350.0, 500.0, 750.0, 1000.0, 2000.0])
    ease_best, ease_trials = tune(EASEScorer, ease_grid, X_fit, val_rel, K)
    timings["tune_ease_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    als_grid = (grid(factors=[32, 64], regularization=[0.05], iterations=[15],
                     alpha=[5.0, 20.0], seed=[seed]) if quick else
                grid(factors=[16, 32, 64, 128], regularization=[0.1, 1.0],
                     iterations=[15, 30], alpha=[1.0, 5.0, 20.0], seed=[seed]))
    als_best, als_trials = tune(ALSScorer, als_grid, X_fit, val_rel, K)
    timings["tune_als_s"] = time.perf_counter() - t0

    X_train = interaction_matrix(train, n_users, n_items)
    seen = X_train[eval_users]
    recs: dict[str, dict[int, list[int]]] = {}
    pop = np.asarray(X_train.sum(axis=0)).ravel()
    top = top_k_unseen(np.tile(pop, (len(eval_users), 1)), seen, K)
    recs["most_popular"] = {int(u): list(map(int, top[j])) for j, u in enumerate(eval_users)}
    ease = EASEScorer(**ease_best).fit(X_train)
    top = top_k_unseen(ease.scores(eval_users), seen, K)
    recs["ease"] = {int(u): list(map(int, top[j])) for j, u in enumerate(eval_users)}
    als = ALSScorer(**als_best).fit(X_train)
    top = top_k_unseen(als.scores(eval_users), seen, K)
    recs["als"] = {int(u): list(map(int, top[j])) for j, u in enumerate(eval_users)}

    t0 = time.perf_counter()
    hybrid = HybridCF(ease_l2=ease_best["l2"],
                      als_params={k: v for k, v in als_best.items() if k != "seed"},
                      n_estimators=300 if quick else 500, seed=seed, item_genres=genres)
    hybrid.fit(train, n_users, n_items)
    recs["newsdesk_hybrid"] = hybrid.recommend(eval_users, K)
    timings["hybrid_fit_recommend_s"] = time.perf_counter() - t0

    evals = {name: evaluate_topk(name, r, test_rel, K, users=list(map(int, eval_users)))
             for name, r in recs.items()}
    pop_share = {i: float(c) / n_users for i, c in enumerate(pop)}
    cats = None
    if genres is not None:  # first listed genre as the category for diversity
        cats = {i: str(int(np.argmax(genres[i]))) for i in range(n_items) if genres[i].any()}
    systems = {}
    for name, ev in evals.items():
        s = ev.summary()
        s.update(beyond_accuracy(recs[name], catalog_size=n_items, popularity=pop_share, k=K,
                                 categories=cats))
        systems[name] = s
    per_unit = {name: ev.per_unit() for name, ev in evals.items()}
    n_boot = 500 if quick else 2000
    comparisons = []
    for base in ("ease", "als", "most_popular"):
        comparisons += compare_systems({base: per_unit[base],
                                        "newsdesk_hybrid": per_unit["newsdesk_hybrid"]}, base,
                                       [f"ndcg@{K}", f"recall@{K}"], n_resamples=n_boot,
                                       seed=seed)
    best_nd = systems["newsdesk_hybrid"][f"ndcg@{K}"]
    lift_ease = best_nd / systems["ease"][f"ndcg@{K}"] - 1.0
    timings["total_s"] = time.perf_counter() - t_start
    return {
        "benchmark": "movielens",
        "data": str(data),
        "protocol": "per-user temporal 80/20, positives rating>=4, seen excluded, full ranking",
        "users_evaluated": len(eval_users),
        "systems": systems,
        "comparisons": [c.to_dict() for c in comparisons],
        "tuning": {"ease_best": ease_best, "als_best": als_best,
                   "ease_trials": ease_trials, "als_trials": als_trials},
        "hybrid_candidate_recall_val": hybrid.candidate_recall_,
        "hybrid_trees": hybrid.best_iteration_,
        "target": {"hybrid_ndcg_lift_over_ease": lift_ease,
                   "met_5pct_over_ease": lift_ease >= 0.05,
                   "above_als": best_nd > systems["als"][f"ndcg@{K}"]},
        "timing_s": {k: round(v, 2) for k, v in timings.items()},
        "quick": quick,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="smaller tuning grids (< 3 min)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--report", type=Path, default=None, help="PREFIX for .md / .png / .json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with warnings.catch_warnings():
        # implicit's own advice about BLAS threading, which we already follow
        warnings.filterwarnings("ignore", message=".*OpenBLAS.*", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*threadpoolctl.*", category=RuntimeWarning)
        result = run(args.data.resolve(), args.quick, args.seed)
    print(f"MovieLens ({result['data']}), {result['users_evaluated']} users, "
          f"{result['protocol']}")
    print(f"{'system':<18}{'nDCG@10':>9}{'recall@10':>11}{'hit@10':>8}{'coverage':>10}"
          f"{'novelty':>9}")
    for name, s in result["systems"].items():
        print(f"{name:<18}{s['ndcg@10']:>9.4f}{s['recall@10']:>11.4f}{s['hit@10']:>8.4f}"
              f"{s['coverage']:>10.3f}{s['novelty']:>9.2f}")
    for c in result["comparisons"]:
        print(f"  {c['metric']} hybrid - {c['system_a']}: {c['diff']:+.4f} "
              f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]")
    t = result["target"]
    print(f"tuned: EASE {result['tuning']['ease_best']}, ALS {result['tuning']['als_best']}")
    print(f"target nDCG@10 >= EASE + 5%: lift {t['hybrid_ndcg_lift_over_ease']:+.1%} -> "
          f"{'met' if t['met_5pct_over_ease'] else 'NOT met'}; above ALS: {t['above_als']}")
    print(f"timing: {result['timing_s']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if args.report:
        from newsdesk.evaluation.bootstrap import PairedComparison
        from newsdesk.evaluation.report import EvaluationReport

        cmps = [PairedComparison.from_dict(c) for c in result["comparisons"]]
        EvaluationReport("MovieLens 100K, temporal top-10", result["systems"], cmps,
                         meta={"users": result["users_evaluated"]}).write(args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
