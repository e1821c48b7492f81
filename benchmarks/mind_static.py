"""MIND static protocol on the sample: a bundle trained on the days before the last, scored
on the last day with the history column and the earlier logs known, and the report checked
against the competition's arithmetic on the written prediction file.

    python benchmarks/mind_static.py [--data PATH] [--quick] [--json FILE]

(--quick is accepted for the house pattern; the run is always the quick training of
mind_replay.py --quick: minilm-int8, 100 boosting rounds, 2,000 training impressions.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mind_replay as mr  # noqa: E402  (reuses its point-in-time training)


def run(data: Path, seed: int) -> dict:
    from newsdesk.data.dataset import Dataset
    from newsdesk.data.importers import run_import
    from newsdesk.evaluation.harness import run_evaluation
    from newsdesk.evaluation.mind_protocol import labeled_impressions
    from newsdesk.evaluation.mind_scorer import read_prediction_file, score_prediction_file
    from newsdesk.evaluation.replay import day_bounds

    with tempfile.TemporaryDirectory(prefix="mind-static-") as tmp:
        work = Path(tmp)
        run_import("mind", data, work / "ds", skip_invalid=True, progress=False)
        ds = Dataset(work / "ds")
        start, end = day_bounds(ds)[-1]
        mr._newsdesk_pipeline(work / "ds", work, start, "minilm-int8", True)
        (bundle,) = [p for p in (work / "bundles").iterdir() if not p.name.startswith(".")]
        pred_path = work / "prediction.txt"
        rep = run_evaluation(work / "ds", bundle, "mind", window="last-day", k=10, seed=seed,
                             n_resamples=300, predictions=pred_path).to_dict()
        truth = {i.impression_id: list(i.labels)
                 for i in labeled_impressions(ds, start=start, end=end)}
        rep["scorer_from_file_newsdesk"] = score_prediction_file(
            read_prediction_file(pred_path), truth)
    rep["data"] = str(data)
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=mr.DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (args.data / "behaviors.tsv").is_file():
        print(f"no MIND data at {args.data}; pass --data PATH", file=sys.stderr)
        return 2
    rep = run(args.data.resolve(), args.seed)
    for name, s in rep["systems"].items():
        print(f"{name:<18} AUC {s['auc']:.4f}  MRR {s['mrr']:.4f}  nDCG@10 {s['ndcg@10']:.4f}")
    f = rep["scorer_from_file_newsdesk"]
    print(f"scorer on the written file (newsdesk): AUC {f['auc']:.4f}  MRR {f['mrr']:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rep, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
