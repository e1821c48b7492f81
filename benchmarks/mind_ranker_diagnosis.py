"""Why newsdesk's learned ranker loses to streaming CTR on the MIND sample: ranker variants.

    python benchmarks/mind_ranker_diagnosis.py [--data PATH] [--quick] [--json FILE]

Trains newsdesk's pipeline on the days before the last (as `mind_replay.py` does) in several
variants and replays the last day with each beside streaming CTR, reporting for every variant
its AUC, the paired bootstrap difference to streaming CTR, the ranker's training size, best
iteration and top features by gain, and the AUC of its own `smoothed_ctr` column alone (which
checks that the ranker has streaming CTR's signal available at replay time):

    default             the train config `mind_replay.py --quick` uses
    no_generator_split  the ranker trains on the whole pre-validation span (MIND replays give
                        the candidates, so the 30 % generator period only starves the ranker)
    half_life_24h       the features' decay equal to streaming CTR's 24 h
    ctr_only            every feature missing but the article counts and smoothed CTR
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

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mind_replay import DEFAULT_DATA, _newsdesk_pipeline  # noqa: E402

_CTR_FEATURES = ("log_decayed_clicks", "log_decayed_impressions", "smoothed_ctr",
                 "log_clicks", "log_impressions", "lifetime_ctr")


def variants() -> dict[str, dict]:
    from newsdesk.features.ranking_features import FEATURE_NAMES

    no_split = {"split": {"generator_fraction": 0.0}}
    return {
        "default": {},
        "no_generator_split": no_split,
        "half_life_24h": {**no_split, "features": {"half_life_hours": 24.0}},
        "ctr_only": {**no_split, "features": {
            "half_life_hours": 24.0,
            "disabled": [f for f in FEATURE_NAMES if f not in _CTR_FEATURES]}},
    }


class _ColumnScorer:
    """Scores by one column of a pipeline's feature matrix (as the ranker would see it)."""

    def __init__(self, pipeline, column: int) -> None:
        self.pipeline, self.column = pipeline, column

    def upsert_articles(self, articles) -> None:  # the pipeline itself is upserted
        pass

    def score(self, ctx, article_ids):
        return self.pipeline.features(ctx, article_ids)[:, self.column].astype(np.float64)


def run(data: Path, quick: bool, seed: int, embedder: str, names: list[str]) -> dict:
    from newsdesk.data.dataset import Dataset
    from newsdesk.data.importers import run_import
    from newsdesk.evaluation.bootstrap import compare_systems
    from newsdesk.evaluation.replay import build_events, day_bounds, replay_events
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.features.ranking_features import FEATURE_NAMES
    from newsdesk.models.baselines import StreamingCTRRecommender
    from newsdesk.models.bundle import read_manifest

    out: dict = {"benchmark": "mind_ranker_diagnosis", "data": str(data), "variants": {}}
    with tempfile.TemporaryDirectory(prefix="mind-diag-") as tmp:
        work = Path(tmp)
        run_import("mind", data, work / "dataset", skip_invalid=True, progress=False)
        ds = Dataset(work / "dataset")
        test_start, test_end = day_bounds(ds)[-1]
        ctr_store = MemoryOnlineStore(half_life_hours=24.0)
        systems: dict = {"streaming_ctr": StreamingCTRRecommender(ctr_store)}
        stores = [ctr_store]
        all_variants = variants()
        for name in names:
            t0 = time.perf_counter()
            vwork = work / name
            pipe, store, why = _newsdesk_pipeline(work / "dataset", vwork, test_start, embedder,
                                                  quick, all_variants[name])
            if pipe is None:
                raise SystemExit(f"newsdesk pipeline unavailable: {why}")
            bundle = next(b for b in (vwork / "bundles").iterdir()
                          if (b / "manifest.json").is_file())
            metrics = read_manifest(bundle).get("metrics", {})
            gains = metrics.get("feature_importance", {})
            total = sum(gains.values()) or 1.0
            out["variants"][name] = {
                "config": all_variants[name],
                "train_impressions": metrics.get("train_impressions"),
                "train_rows": metrics.get("train_rows"),
                "best_iteration": metrics.get("best_iteration"),
                "valid": metrics.get("valid"), "valid_trending": metrics.get("valid_trending"),
                "top_gain_share": {k: round(v / total, 3) for k, v in
                                   sorted(gains.items(), key=lambda kv: -kv[1])[:6]},
                "train_s": round(time.perf_counter() - t0, 1),
            }
            systems[f"newsdesk[{name}]"] = pipe
            systems[f"smoothed_ctr_column[{name}]"] = _ColumnScorer(
                pipe, FEATURE_NAMES.index("smoothed_ctr"))
            stores.append(store)
        events = build_events(ds, score_from=test_start, score_until=test_end)
        evals = replay_events(events, systems, stores)
    per_unit = {k: ev.per_unit() for k, ev in evals.items()}
    out["systems"] = {k: ev.summary() for k, ev in evals.items()}
    n_boot = 300 if quick else 1000
    cmps = compare_systems(per_unit, "streaming_ctr", ["auc"], n_resamples=n_boot, seed=seed)
    out["comparisons"] = [c.to_dict() for c in cmps]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true",
                    help="the quick ranker config of mind_replay --quick, fewer resamples")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=None,
                    help="comma-separated subset of: " + ", ".join(variants()))
    ap.add_argument("--embedder", default=None)
    args = ap.parse_args(argv)
    names = args.variants.split(",") if args.variants else list(variants())
    unknown = [n for n in names if n not in variants()]
    if unknown:
        ap.error(f"--variants: unknown {unknown}; known: {list(variants())}")
    if not (args.data / "behaviors.tsv").is_file():
        print(f"no MIND data at {args.data}; pass --data PATH", file=sys.stderr)
        return 2
    embedder = args.embedder or ("minilm-int8" if args.quick else "minilm")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*OpenBLAS.*", category=RuntimeWarning)
        res = run(args.data.resolve(), args.quick, args.seed, embedder, names)
    print(f"{'system':<40}{'AUC':>8}{'MRR':>8}")
    for k, s in res["systems"].items():
        print(f"{k:<40}{s['auc']:>8.4f}{s['mrr']:>8.4f}")
    for c in res["comparisons"]:
        print(f"  AUC {c['system_b']} - streaming_ctr: {c['diff']:+.4f} "
              f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]")
    for k, v in res["variants"].items():
        print(f"  {k}: train_impressions={v['train_impressions']} rows={v['train_rows']} "
              f"best_iteration={v['best_iteration']} top gain={v['top_gain_share']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
