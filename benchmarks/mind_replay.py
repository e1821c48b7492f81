"""MIND streaming replay benchmark: rank the last day's impressions using only the past.

    python benchmarks/mind_replay.py [--data PATH] [--quick] [--json FILE] [--report PREFIX]

Imports the MIND sample (behaviors.tsv + news.tsv) with the newsdesk importer, replays every
day in time order through an in-memory online store, and scores the impressions of the last
day with: random, static most-popular (clicks of the earlier days), streaming smoothed CTR,
and -- when the training pipeline is installed -- newsdesk's own pipeline trained on the days
before the last and loaded with `load_recommender`. Paired bootstrap intervals compare each
system with random and with streaming CTR.

The `log_signals*` systems (`newsdesk.models.log_signals`) use only what the logs carry: id-keyed
co-clicks from the readers' histories and clicks, age since first seen, fast vs slow CTR. Their
logistic weights are fitted on the day before the test day (a point-in-time replay of the past),
and each variant adds one group of features, so the rows are the ablation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's advice, before numpy loads

import polars as pl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "mind-sample"


def _newsdesk_pipeline(dataset_dir: Path, work: Path, train_until: float, embedder: str,
                       quick: bool, config: dict | None = None):
    """Train newsdesk's pipeline on the days before `train_until` and load it with its own
    online store; (None, None, reason) when the pipeline is not installed. `config` is merged
    over the train config (one level deep), e.g. {"features": {"half_life_hours": 24}}."""
    try:
        from newsdesk.models.bundle import load_recommender, offline_store
        from newsdesk.pipelines.train import TrainConfig, train
    except ImportError as exc:
        return None, None, f"pipeline not installed ({exc})"
    from newsdesk.data.dataset import Dataset, DatasetWriter

    # a training dataset that holds only what was logged before the test day
    src = Dataset(dataset_dir)
    train_dir = work / "train-dataset"
    cut = pl.lit(int(train_until * 1e6)).cast(pl.Datetime("us", "UTC"))
    time_col = {"articles": "published_at", "impressions": "timestamp",
                "interactions": "timestamp", "histories": None}
    with DatasetWriter(train_dir, source=src.source) as w:
        for table, col in time_col.items():
            frame = src.read(table)
            if col is not None:
                frame = frame.filter(pl.col(col) < cut)
            w.table(table, dedupe=False).write_table(frame)
    overrides = {"ranker": {"num_boost_round": 100, "max_train_impressions": 2000}} if quick \
        else {}
    merged: dict = {"embedder": embedder, "embedding_cache_dir": str(work / "emb-cache"),
                    **overrides}
    for key, value in (config or {}).items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    cfg = TrainConfig.from_dict(merged)
    version = train(train_dir, work / "bundles", cfg)
    bundle = work / "bundles" / version
    store = offline_store(bundle)  # its half-life, and exposure lists if it reads them
    from newsdesk.content import make_embedder

    # the training run's embedding cache makes re-upserting known articles cheap
    emb = make_embedder(embedder, cache_dir=work / "emb-cache")
    return load_recommender(bundle, store, embedder=emb), store, None


FIT_FROM_DAY = 1  # the log-signal models are fitted on days 2 .. n-1 (day 1 only warms up)
# the ablation: each variant adds one group of log features to the one before
LOG_VARIANTS = {
    "log_signals_ctr": ("ctr_logit", "log_decayed_imps"),
    "log_signals_+dynamics": ("ctr_logit", "log_decayed_imps", "fast_ctr_logit", "ctr_trend"),
    "log_signals_+age": ("ctr_logit", "log_decayed_imps", "fast_ctr_logit", "ctr_trend",
                         "log_age_hours", "never_seen"),
    "log_signals": ("ctr_logit", "log_decayed_imps", "fast_ctr_logit", "ctr_trend",
                    "log_age_hours", "never_seen", "log_coclick", "coclick_share"),
    "log_signals_coclick_only": ("log_coclick", "coclick_share"),
    # per-reader signals (models.personal_ctr), each added to the CTR variant alone
    "log_signals_ctr+reader_shown": ("ctr_logit", "log_decayed_imps", "reader_shown"),
    "log_signals_ctr+global_lift": ("ctr_logit", "log_decayed_imps", "global_lift_log"),
    "log_signals_ctr+personal_lift": ("ctr_logit", "log_decayed_imps", "personal_lift_log"),
}


def _fit_log_signals(ds, fit_from: float, fit_until: float) -> dict:
    """Fit each LOG_VARIANTS model on the impressions of [fit_from, fit_until), replaying
    everything before them; returns name -> fitted weights."""
    import numpy as np

    from newsdesk.evaluation.replay import ImpressionEvent, build_events, replay_events
    from newsdesk.models.log_signals import (
        LOG_FEATURES,
        FeatureLogger,
        LogSignalStore,
        fit_lambdarank,
        fit_logistic,
    )

    store = LogSignalStore(half_life_hours=24.0)
    logger = FeatureLogger(store)
    events = build_events(ds, score_from=fit_from, score_until=fit_until)
    replay_events(events, {"log": logger}, store)
    labels = [np.asarray(e.impression.labels, dtype=np.float64) for e in events
              if isinstance(e, ImpressionEvent) and e.scored]
    # centred within each impression: only the ranking inside a slate counts (per-impression
    # AUC), so the fit is a conditional logit, not a model of which slates get clicks
    x = np.vstack([r - r.mean(axis=0) for r in logger.rows])
    y = np.concatenate(labels)
    fitted = {}
    for name, feats in LOG_VARIANTS.items():
        cols = [LOG_FEATURES.index(f) for f in feats]
        fitted[name] = (feats, fit_logistic(x[:, cols], y))
    return fitted, fit_lambdarank(logger.rows, labels)


def run(data: Path, quick: bool, seed: int, embedder: str, pipeline_on: bool = True,
        test_day: int = -1, train_config: dict | None = None) -> dict:
    from newsdesk.data.dataset import Dataset
    from newsdesk.data.importers import run_import
    from newsdesk.evaluation.bootstrap import compare_systems
    from newsdesk.evaluation.replay import build_events, day_bounds, replay_events
    from newsdesk.models.baselines import MostPopular, RandomRecommender, StreamingCTRRecommender

    with tempfile.TemporaryDirectory(prefix="mind-replay-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        run_import("mind", data, work / "dataset", skip_invalid=True, progress=False)
        ds = Dataset(work / "dataset")
        days = day_bounds(ds)
        if not -len(days) + FIT_FROM_DAY < test_day < 0:
            raise SystemExit(f"--test-day must lie in [{-len(days) + FIT_FROM_DAY + 1}, -1] "
                             f"(fitting starts on day {FIT_FROM_DAY + 1}); got {test_day}")
        test_start, test_end = days[test_day]
        import_s = time.perf_counter() - t0

        from newsdesk.models.log_signals import (
            LogSignalRanker,
            LogSignalRecommender,
            LogSignalStore,
        )
        from newsdesk.models.personal_ctr import PersonalCTRRecommender

        # streaming CTR reads only the MemoryOnlineStore part: identical to a plain store
        store = LogSignalStore(half_life_hours=24.0)
        clicks_before = (ds.scan("interactions")
                         .filter((pl.col("type") == "click") & (pl.col("timestamp") < pl.lit(
                             int(test_start * 1e6)).cast(pl.Datetime("us", "UTC"))))
                         .select("article_id").collect()["article_id"].to_list())
        systems = {
            "random": RandomRecommender(seed=seed),
            "most_popular_static": MostPopular().fit(clicks_before),
            "streaming_ctr": StreamingCTRRecommender(store),
        }
        t1 = time.perf_counter()
        fitted, booster = _fit_log_signals(ds, days[FIT_FROM_DAY][0], test_start)
        for name, (feats, weights) in fitted.items():
            systems[name] = LogSignalRecommender(store, feats, weights)
        systems["log_signals_gbm"] = LogSignalRanker(store, booster)
        # no fitting: their settings (models.personal_ctr) were picked on days 4-5
        systems["global_lift"] = PersonalCTRRecommender(store, "global_lift")
        systems["personal_ctr"] = PersonalCTRRecommender(store, "ctr")
        systems["personal_lift"] = PersonalCTRRecommender(store, "lift")
        log_fit_s = time.perf_counter() - t1
        notes = {}
        stores = [store]
        t1 = time.perf_counter()
        if pipeline_on:
            pipeline, pipe_store, why_not = _newsdesk_pipeline(work / "dataset", work,
                                                               test_start, embedder, quick,
                                                               train_config)
        else:
            pipeline, pipe_store, why_not = None, None, "skipped (--no-pipeline)"
        train_s = time.perf_counter() - t1
        if pipeline is not None:
            systems["newsdesk"] = pipeline
            stores.append(pipe_store)
        else:
            notes["newsdesk"] = why_not

        t1 = time.perf_counter()
        events = build_events(ds, score_from=test_start, score_until=test_end)
        evals = replay_events(events, systems, stores)
        replay_s = time.perf_counter() - t1

    per_unit = {name: ev.per_unit() for name, ev in evals.items()}
    n_boot = 300 if quick else 1000
    comparisons = compare_systems(per_unit, "random", n_resamples=n_boot, seed=seed)
    for other in ("newsdesk", *LOG_VARIANTS, "log_signals_gbm", "global_lift", "personal_ctr",
                  "personal_lift"):
        if other in per_unit:
            comparisons += compare_systems(
                {k: per_unit[k] for k in ("streaming_ctr", other)}, "streaming_ctr",
                n_resamples=n_boot, seed=seed)
    return {
        "benchmark": "mind_replay",
        "data": str(data),
        "days": len(days),
        "test_day": test_day,
        "test_day_start": test_start,
        "systems": {name: ev.summary() for name, ev in evals.items()},
        "comparisons": [c.to_dict() for c in comparisons],
        "log_signal_weights": {name: {"features": list(feats),
                                      "weights_standardised": [round(float(v), 4)
                                                               for v in w[0]]}
                               for name, (feats, w) in fitted.items()},
        "timing_s": {"import": round(import_s, 2), "train_newsdesk": round(train_s, 2),
                     "fit_log_signals": round(log_fit_s, 2),
                     "replay": round(replay_s, 2)},
        "embedder": embedder,
        "train_config": train_config,
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="fewer bootstrap resamples")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    ap.add_argument("--report", type=Path, default=None,
                    help="also write PREFIX.md / .png / .json with the report writer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-day", type=int, default=-1,
                    help="which day to score, counted from the end (-1: the last; -2 checks "
                         "a choice made on the last day against the day before)")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="skip training newsdesk's bundle (the log-signal systems still run)")
    ap.add_argument("--embedder", default=None,
                    help="newsdesk's embedder (default: minilm; minilm-int8 with --quick)")
    ap.add_argument("--train-config", type=Path, default=None,
                    help="a train config YAML merged over newsdesk's (one level deep), e.g. "
                         "features: {disabled: []} for every opt-in feature")
    args = ap.parse_args(argv)
    train_config = None
    if args.train_config:
        import yaml

        train_config = yaml.safe_load(args.train_config.read_text()) or {}
    embedder = args.embedder or ("minilm-int8" if args.quick else "minilm")
    if not (args.data / "behaviors.tsv").is_file():
        print(f"no MIND data at {args.data} (behaviors.tsv missing); pass --data PATH",
              file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        # implicit's advice about BLAS threads, which OPENBLAS_NUM_THREADS above follows
        warnings.filterwarnings("ignore", message=".*OpenBLAS.*", category=RuntimeWarning)
        result = run(args.data.resolve(), args.quick, args.seed, embedder,
                     pipeline_on=not args.no_pipeline, test_day=args.test_day,
                     train_config=train_config)
    print(f"MIND replay on {result['data']}: {result['days']} days, scoring day "
          f"{result['test_day']} (from the end)")
    print(f"{'system':<26}{'AUC':>8}{'MRR':>8}{'nDCG@5':>9}{'nDCG@10':>9}{'imps':>7}")
    for name, s in result["systems"].items():
        print(f"{name:<26}{s['auc']:>8.4f}{s['mrr']:>8.4f}{s['ndcg@5']:>9.4f}"
              f"{s['ndcg@10']:>9.4f}{int(s['impressions']):>7}")
    for c in result["comparisons"]:
        if c["metric"] == "auc":
            print(f"  AUC {c['system_b']} - {c['system_a']}: {c['diff']:+.4f} "
                  f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] (n={c['n_units']})")
    for k, v in result["notes"].items():
        print(f"  note: {k}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if args.report:
        from newsdesk.evaluation.bootstrap import PairedComparison
        from newsdesk.evaluation.report import EvaluationReport

        cmps = [PairedComparison.from_dict(c) for c in result["comparisons"]]
        EvaluationReport("MIND sample: streaming replay of the last day", result["systems"],
                         cmps, meta={"data": result["data"]}).write(args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
