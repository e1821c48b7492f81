"""The MIND protocol: rank each logged impression's own slate and average per-impression metrics.

    labeled_impressions(dataset)   impressions with their click labels, in time order
    ImpressionEvaluation           per-impression AUC / MRR / nDCG@5 / nDCG@10 and ranks
    evaluate_static(rec, imps)     score impressions with no state updates (offline MIND eval)
    write_prediction_file(...)     the MIND leaderboard format: `impid [r1,r2,...]`

The streaming variant, which feeds the online store as events arrive, is `replay.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.evaluation.metrics import IMPRESSION_METRICS, impression_metrics, nanmean, ranks
from newsdesk.models.base import Recommender, RequestContext


@dataclass(frozen=True, slots=True)
class LabeledImpression:
    """One logged slate: shown ids in order and 0/1 click labels aligned with them."""

    impression_id: str
    user_id: str
    ts: float  # Unix seconds
    article_ids: tuple[str, ...]
    labels: tuple[int, ...]
    surface: str = "front_page"

    @property
    def clicked(self) -> tuple[str, ...]:
        return tuple(a for a, y in zip(self.article_ids, self.labels, strict=True) if y)


def _unix(ts: datetime) -> float:
    return ts.timestamp()


def labeled_impressions(dataset: Dataset, *, start: float | None = None, end: float | None = None
                        ) -> Iterator[LabeledImpression]:
    """Impressions in time order, labels from click interactions attributed by request_id.

    `start` / `end` (Unix seconds, end exclusive) select a time window.
    """
    imps = dataset.scan("impressions").select("request_id", "user_id", "timestamp", "surface",
                                              "article_ids")
    if start is not None:
        imps = imps.filter(pl.col("timestamp").dt.epoch("us") >= int(start * 1e6))
    if end is not None:
        imps = imps.filter(pl.col("timestamp").dt.epoch("us") < int(end * 1e6))
    clicks = (dataset.scan("interactions")
              .filter((pl.col("type") == "click") & pl.col("request_id").is_not_null())
              .group_by("request_id").agg(pl.col("article_id").alias("clicked")))
    frame = (imps.join(clicks, on="request_id", how="left")
             .sort(["timestamp", "request_id"]).collect())
    for row in frame.iter_rows(named=True):
        clicked = set(row["clicked"] or ())
        ids = tuple(row["article_ids"])
        yield LabeledImpression(
            impression_id=row["request_id"], user_id=row["user_id"], ts=_unix(row["timestamp"]),
            article_ids=ids, labels=tuple(1 if a in clicked else 0 for a in ids),
            surface=row["surface"] or "front_page",
        )


@dataclass
class ImpressionEvaluation:
    """Per-impression metric values of one system (NaN where a metric is undefined)."""

    system: str
    impression_ids: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(
        default_factory=lambda: {m: [] for m in IMPRESSION_METRICS})
    ranks: list[np.ndarray] = field(default_factory=list)

    def add(self, impression: LabeledImpression, scores: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(impression.article_ids),):
            raise ValueError(
                f"system {self.system!r} returned scores of shape {scores.shape} for "
                f"{len(impression.article_ids)} shown articles (impression "
                f"{impression.impression_id})")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"system {self.system!r} returned a non-finite score "
                             f"(impression {impression.impression_id})")
        self.impression_ids.append(impression.impression_id)
        for name, value in impression_metrics(impression.labels, scores).items():
            self.values[name].append(value)
        self.ranks.append(ranks(scores))

    def per_unit(self) -> dict[str, np.ndarray]:
        """metric -> per-impression values, in evaluation order."""
        return {m: np.asarray(v, dtype=np.float64) for m, v in self.values.items()}

    def summary(self) -> dict[str, float]:
        """Mean of each metric over impressions where it is defined, plus counts."""
        out: dict[str, float] = {m: nanmean(v) for m, v in self.values.items()}
        out["impressions"] = float(len(self.impression_ids))
        out["impressions_with_auc"] = float(np.sum(~np.isnan(self.values["auc"])))
        return out


def context_for(impression: LabeledImpression, k: int | None = None) -> RequestContext:
    """The request a logged impression answered (its user and time)."""
    return RequestContext(user_id=impression.user_id, now=impression.ts,
                          surface=impression.surface, k=k or len(impression.article_ids))


def evaluate_static(systems: dict[str, Recommender], impressions: Iterable[LabeledImpression]
                    ) -> dict[str, ImpressionEvaluation]:
    """Score every impression with every system, writing nothing to any store."""
    evals = {name: ImpressionEvaluation(name) for name in systems}
    for imp in impressions:
        ctx = context_for(imp)
        for name, rec in systems.items():
            evals[name].add(imp, rec.score(ctx, imp.article_ids))
    return evals


def write_prediction_file(path: str | Path, impression_ids: Sequence[str],
                          ranks_per_impression: Sequence[np.ndarray]) -> Path:
    """Write MIND leaderboard predictions: one line `impid [r1,r2,...]` per impression.

    r_i is the 1-based rank of the i-th shown item (as in MIND's prediction.txt).
    """
    if len(impression_ids) != len(ranks_per_impression):
        raise ValueError("impression_ids and ranks_per_impression must have equal length")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for impid, r in zip(impression_ids, ranks_per_impression, strict=True):
            fh.write(f"{impid} [{','.join(str(int(x)) for x in r)}]\n")
    return path
