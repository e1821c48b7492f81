"""Request cost of the ranking features: `FeatureBuilder.build` for one reader, per feature set.

    python benchmarks/feature_cost.py [--quick] [--json FILE] [--rows 400] [--exposures 100]

One reader (the serving path: one user, `rows` candidates) on a synthetic catalog of unit
vectors (20k articles, 384 dimensions, as MiniLM's), with 50 recent clicks and `exposures`
distinct recent exposures (the worst case: a real list repeats articles, which the feature
counts once per distinct article). Three builders, alternated in blocks so that a busy moment
of a shared machine hits all alike: the default (opt-in features off), the four text features
on (story_clicks, hours_since_story_click, entity_overlap, language_mismatch), and every
opt-in feature on (adds story_exposures). Prints and writes the median ms per build and the
range of the block medians.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from newsdesk.features.ranking_features import FeatureBuilder, RankingInputs
from newsdesk.pipelines.train import OPT_IN_FEATURES


def catalog(n: int, dim: int, rng: np.random.Generator) -> SimpleNamespace:
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return SimpleNamespace(embeddings=emb, published=np.zeros(n), expires=np.full(n, np.inf),
                           category=rng.integers(0, 20, n), categories=[str(i) for i in range(20)],
                           language=np.zeros(n, np.int64), entities=rng.integers(-1, 300, (n, 6)))


def request(n: int, rows: int, exposures: int, rng: np.random.Generator) -> RankingInputs:
    return RankingInputs(
        click_idx=rng.integers(0, n, (1, 50)), click_ts=np.full((1, 50), 1.0), user_ids=["u"],
        row_query=np.zeros(rows, np.int64), row_article=rng.integers(0, n, rows),
        now=np.full(rows, 100.0), position=np.zeros(rows), stats=np.ones((rows, 4)),
        exposure_idx=rng.choice(n, (1, exposures), replace=False) if exposures else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer blocks")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--exposures", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = 20_000
    cat = catalog(n, 384, rng)
    builders = {
        "default": (FeatureBuilder(disabled=list(OPT_IN_FEATURES)), 0),
        "text_features_on": (FeatureBuilder(disabled=["story_exposures"]), 0),
        "all_on_story_exposures": (FeatureBuilder(disabled=[]), args.exposures),
    }
    blocks: dict[str, list[float]] = {k: [] for k in builders}
    per_block = 50
    for _ in range(3 if args.quick else 8):
        for name, (b, m) in builders.items():
            reqs = [request(n, args.rows, m, rng) for _ in range(per_block)]
            t = time.perf_counter()
            for r in reqs:
                b.build(r, cat)
            blocks[name].append((time.perf_counter() - t) / per_block * 1000.0)
    result = {"benchmark": "feature_cost", "rows": args.rows, "exposures": args.exposures,
              "systems": {k: {"median_ms": float(np.median(v)), "block_min_ms": min(v),
                              "block_max_ms": max(v)} for k, v in blocks.items()}}
    base = result["systems"]["default"]["median_ms"]
    for k, v in result["systems"].items():
        v["ratio_to_default"] = v["median_ms"] / base
        print(f"{k:24s} median {v['median_ms']:.3f} ms  x{v['ratio_to_default']:.2f}  "
              f"(blocks {v['block_min_ms']:.3f}-{v['block_max_ms']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
