"""The MIND leaderboard's scorer, re-done from the written files (a cross-check of reports).

    read_prediction_file(path)        impid -> 1-based ranks, as `write_prediction_file` wrote
    write_truth_file(path, imps)      MIND's truth format: `impid [l1,l2,...]`
    score_prediction_file(pred, truth) mean AUC / MRR / nDCG@5 / nDCG@10 over impressions

The arithmetic is the competition's `evaluate.py`: each item's score is 1/rank (so no two
items tie), AUC is sklearn's roc_auc_score on those scores, MRR and nDCG order by
`argsort(score)[::-1]`. A report from `mind_protocol` must equal what this computes from its
own prediction file; the tests hold the two together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from newsdesk.evaluation.metrics import auc, nanmean


def _parse_line(line: str, path: Path, lineno: int) -> tuple[str, list[int]]:
    try:
        impid, rest = line.strip().split(" ", 1)
        body = rest.strip()
        if not (body.startswith("[") and body.endswith("]")):
            raise ValueError("missing brackets")
        return impid, [int(x) for x in body[1:-1].split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"{path}:{lineno}: not an `impid [r1,r2,...]` line ({exc})") from exc


def read_prediction_file(path: str | Path) -> dict[str, list[int]]:
    """impid -> list of integers, from a MIND-format file (predictions or truth)."""
    path = Path(path)
    out: dict[str, list[int]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                impid, values = _parse_line(line, path, lineno)
                out[impid] = values
    return out


def write_truth_file(path: str | Path, impressions: Iterable[object]) -> Path:
    """Write `impid [labels]` for LabeledImpression-like objects (impression_id, labels)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for imp in impressions:
            labels = ",".join(str(int(y)) for y in imp.labels)  # type: ignore[attr-defined]
            fh.write(f"{imp.impression_id} [{labels}]\n")  # type: ignore[attr-defined]
    return path


def _mrr(y: np.ndarray, s: np.ndarray) -> float:
    y_sorted = y[np.argsort(s)[::-1]]
    return float(np.sum(y_sorted / (np.arange(len(y)) + 1)) / np.sum(y))


def _dcg(y: np.ndarray, s: np.ndarray, k: int) -> float:
    y_top = y[np.argsort(s)[::-1][:k]]
    return float(np.sum((2 ** y_top - 1) / np.log2(np.arange(len(y_top)) + 2)))


def score_prediction_file(predictions: str | Path | Mapping[str, Sequence[int]],
                          truth: str | Path | Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Mean AUC, MRR, nDCG@5, nDCG@10 the competition's scorer computes from the files.

    Impressions without both a click and a non-click are skipped (the scorer's AUC is
    undefined there), as `ImpressionEvaluation.summary` skips them for AUC.
    """
    pred = predictions if isinstance(predictions, Mapping) else read_prediction_file(predictions)
    gold = truth if isinstance(truth, Mapping) else read_prediction_file(truth)
    missing = sorted(set(gold) - set(pred))
    if missing:
        raise ValueError(f"predictions lack {len(missing)} impression(s), e.g. {missing[0]!r}")
    vals: dict[str, list[float]] = {"auc": [], "mrr": [], "ndcg@5": [], "ndcg@10": []}
    for impid, labels in gold.items():
        y = np.asarray(labels, dtype=np.float64)
        r = np.asarray(pred[impid], dtype=np.float64)
        if r.shape != y.shape:
            raise ValueError(f"impression {impid!r}: {len(r)} ranks for {len(y)} labels")
        s = 1.0 / r
        if y.sum() > 0:
            vals["mrr"].append(_mrr(y, s))
            for k in (5, 10):
                vals[f"ndcg@{k}"].append(_dcg(y, s, k) / _dcg(y, y, k))
        if 0 < y.sum() < len(y):
            vals["auc"].append(auc(y, s))
    return {m: nanmean(v) for m, v in vals.items()}
