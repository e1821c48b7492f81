"""The evaluation gate: replay the latest window through the active and the candidate bundle,
compare them with a paired bootstrap, and decide whether the candidate may serve.

    evaluate_pair(dataset, active, candidate, evaluation_cfg, gate_cfg) -> Evaluation
    decide(evaluation, gate_cfg) -> Decision

Evaluation is the streaming replay of `evaluation/replay.py`: events in time order, each
scored impression ranked by both bundles before it is counted, clicks applied at their own
time, each bundle reading a store with its own trained half-life. Events from `warmup_hours`
before the window feed the stores (older ones are skipped to bound the time); at most
`max_scored_impressions` impressions of the window are scored (a seeded uniform sample; the
rest still feed the stores, in vectorised batches between scored impressions:
`pipelines/gate_replay.py`). Both bundles are scored on exactly the same impressions, which is
what makes the bootstrap paired.

The rule (`GateConfig`, see `pipelines/config.py`):

* primary metric, non-inferiority: with rule `ci_lower`, the lower bound of the interval of
  candidate - active must be >= -margin (the data rule out a loss larger than the margin);
  with rule `mean`, the mean difference must be >= -margin;
* every guardrail metric: the candidate is rejected when the whole interval lies below
  -tolerance (a regression the data are sure of).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsdesk.evaluation.bootstrap import PairedComparison, paired_bootstrap
from newsdesk.pipelines.config import EvaluationConfig, GateConfig

ACTIVE, CANDIDATE = "active", "candidate"


@dataclass
class Evaluation:
    """Per-metric paired comparisons (A = active, B = candidate) and per-system summaries."""

    comparisons: dict[str, PairedComparison]
    summaries: dict[str, dict[str, float]]
    window: tuple[float, float]
    scored_impressions: int
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"comparisons": [c.to_dict() for c in self.comparisons.values()],
                "summaries": self.summaries, "window": list(self.window),
                "scored_impressions": self.scored_impressions,
                "seconds": round(self.seconds, 3)}


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "promoted" if self.promote else "rejected"


def _load(bundle: Path, embedders: dict[str, Any], cache_dir: Path | None) -> tuple[Any, Any]:
    """The bundle on a fresh memory store, with an embedder shared by bundles of the same
    embedder (cached on disk when `cache_dir`, else in memory for this evaluation): the
    replay upserts every article into both bundles, and embedding them twice with MiniLM
    dominated the evaluate step."""
    from newsdesk.content import make_embedder
    from newsdesk.content.cache import CachedEmbedder, InMemoryEmbeddingCache
    from newsdesk.models.bundle import load_recommender, offline_store, read_manifest

    manifest = read_manifest(bundle)
    store = offline_store(bundle)
    name = str(manifest["embedder"]["short_name"])
    if name not in embedders:
        embedder = make_embedder(name, cache_dir=cache_dir)
        if cache_dir is None:  # content-hash keyed: the second bundle reuses the first's
            embedder = CachedEmbedder(embedder, InMemoryEmbeddingCache())
        embedders[name] = embedder
    return load_recommender(bundle, store, embedder=embedders[name], ranker="lightgbm"), store


def evaluate_pair(dataset_dir: str | Path, active: Path, candidate: Path,
                  cfg: EvaluationConfig, gate: GateConfig, *,
                  embedding_cache_dir: Path | None = None) -> Evaluation:
    """Replay the latest window through both bundles; paired bootstrap per metric."""
    import time

    from newsdesk.pipelines.gate_replay import sampled_replay
    from newsdesk.pipelines.window import latest_window

    started = time.perf_counter()
    start, end = latest_window(dataset_dir, cfg.window_hours)
    embedders: dict[str, Any] = {}
    active_rec, active_store = _load(active, embedders, embedding_cache_dir)
    cand_rec, cand_store = _load(candidate, embedders, embedding_cache_dir)
    evals = sampled_replay(dataset_dir, start, end, {ACTIVE: active_rec, CANDIDATE: cand_rec},
                           [active_store, cand_store], warmup_hours=cfg.warmup_hours,
                           max_scored=cfg.max_scored_impressions, seed=cfg.seed)
    return compare(evals, gate, cfg.seed, (start, end), time.perf_counter() - started)


def compare(evals: dict[str, Any], gate: GateConfig, seed: int, window: tuple[float, float],
            seconds: float = 0.0) -> Evaluation:
    """Paired bootstrap per gate metric of two systems' per-impression evaluations."""
    per_unit = {name: ev.per_unit() for name, ev in evals.items()}
    metrics = [gate.primary_metric, *[m for m in gate.guardrails if m != gate.primary_metric]]
    comparisons = {m: paired_bootstrap(per_unit[ACTIVE][m], per_unit[CANDIDATE][m], metric=m,
                                       system_a=ACTIVE, system_b=CANDIDATE,
                                       n_resamples=gate.n_resamples,
                                       confidence=gate.confidence, seed=seed)
                   for m in metrics}
    return Evaluation(comparisons, {n: e.summary() for n, e in evals.items()}, window,
                      len(evals[ACTIVE].impression_ids), seconds)


def decide(evaluation: Evaluation, gate: GateConfig) -> Decision:
    """Apply the gate rule (module docstring); the reasons quote the figures."""
    reasons: list[str] = []
    ok = True
    p = evaluation.comparisons[gate.primary_metric]
    bound = p.ci_low if gate.rule == "ci_lower" else p.diff
    what = "interval lower bound" if gate.rule == "ci_lower" else "mean difference"
    if p.n_units == 0 or math.isnan(bound):
        return Decision(False, [f"{gate.primary_metric}: no scorable impressions in the window"])
    figures = (f"{gate.primary_metric} active {p.mean_a:.4f} candidate {p.mean_b:.4f} diff "
               f"{p.diff:+.4f} [{p.ci_low:+.4f}, {p.ci_high:+.4f}] n={p.n_units}")
    if bound >= -gate.margin:
        reasons.append(f"{figures}: {what} {bound:+.4f} >= -{gate.margin} (not worse)")
    else:
        ok = False
        reasons.append(f"{figures}: {what} {bound:+.4f} < -{gate.margin} (worse than margin)")
    for metric, tolerance in gate.guardrails.items():
        c = evaluation.comparisons[metric]
        if c.n_units and c.ci_high < -tolerance:
            ok = False
            reasons.append(f"guardrail {metric} regressed: diff {c.diff:+.4f} "
                           f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] entirely below -{tolerance}")
    return Decision(ok, reasons)
