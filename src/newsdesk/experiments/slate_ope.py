"""Counterfactual CTR of a candidate ranker from explored slates (per-position estimators).

The data: slates served by Plackett-Luce exploration (`newsdesk.serving.exploration`), each
position k with the logged item a_k, its click r_k and its logged propensity
p_k = P_log(a_k at position k) (the exact marginal); and, for the same request, the slate the
candidate would have served, t_1..t_K (deterministic). The estimand is the candidate's CTR,
clicks per shown item, (1/K) sum_k E[click of t_k at position k].

Estimators, on rows (slate, position) with weight w = 1[a_k = t_k] / p_k (arithmetic and
clustered CIs from `newsdesk.experiments.ope`, one cluster per slate):

    ips    per-position IPS, mean(w r): unbiased when a click at position k depends on the
           item, the position and the request but not on the other items (the position-based
           click model), whatever the correlation between positions in the logging policy.
           Clicks are observed per position, so the per-slot form applies directly; the
           pseudo-inverse estimator (Swaminathan et al. 2017) is its counterpart when only a
           slate-level reward is observed and needs pairwise marginals, which we do not log.
    snips  sum(w r) / sum(w): E[w] = 1 per row, so it trades a small bias for less variance.
    dr     q(t_k, k) + w (r_k - q(a_k, k)), with q the candidate's ranker as the reward model:
           its score and the position mapped to a click probability by a logistic fit on the
           logs, cross-fitted over two halves of the slates (so the correction stays unbiased).

Rows where the logging policy could not have served the candidate's item there (p = 0: an item
outside the explored pool) make IPS/SNIPS biased downward; `support` reports the share of the
candidate's (item, position) pairs that were ever logged, and DR covers the rest by the model.

That rest is not identified by the logs, and it is where DR's intervals failed: on the
simulator (benchmarks/ope_live.py) about 30 % of the candidate's items lie outside production's
explored pool, the score-only model predicts them like the items production chose (CTR 0.086
against a true 0.060: production's ranker selected its pool for appeal, so at equal candidate
score an item it left out is worse), DR came out +0.008 too high (about one standard error)
and its 95 % intervals covered the truth in 0.86-0.88 of runs; the variance itself was right
(the spread of the estimates over runs matched the reported se). So the interval now carries
the extrapolation as a bias term, from two reward models that bound it:

    dr_score       q from the candidate's score and the position only (extrapolates an
                   unsupported item as if production might have chosen it);
    dr_propensity  q also from the log of the logging propensity (production's opinion of the
                   item): a candidate item shown in the same slate takes the propensity it was
                   shown with, one not shown takes the slate's smallest (extrapolates it as the
                   least favoured item production did show);
    dr             their midpoint (a DR estimate itself: the average of two reward models), CI
                   value +- (z se + |dr_score - dr_propensity| / 2), `bias_bound` reported.

On supported rows both are unbiased (the IPS correction), so they differ only by the
extrapolation; on the simulator they fall on either side of the truth (+0.008 and -0.009).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from newsdesk.errors import InvalidInput
from newsdesk.experiments.ope import (
    LoggedData,
    OpeEstimate,
    doubly_robust,
    evaluate_all,
    with_bias_bound,
)


@dataclass(frozen=True)
class SlateLog:
    """Row per (slate, position); build with `from_slates`. Arrays of shape (n_rows,)."""

    group: np.ndarray  # slate index
    position: np.ndarray  # 0-based
    reward: np.ndarray  # 1.0 if the logged item there was clicked
    p_log: np.ndarray  # P_log(logged item at that position)
    match: np.ndarray  # 1.0 if the candidate puts the logged item at that position
    score_logged: np.ndarray | None = None  # candidate's ranker score of the logged item
    score_target: np.ndarray | None = None  # ... of the candidate's own item at that position
    # log P_log of the candidate's item: as shown in this slate, else the slate's smallest
    logp_target: np.ndarray | None = None

    @property
    def n_slates(self) -> int:
        return int(np.unique(self.group).size)


def from_slates(logged: Sequence[Sequence[object]], target: Sequence[Sequence[object]],
                clicks: Sequence[Sequence[bool]], propensities: Sequence[Sequence[float]],
                scores_logged: Sequence[Sequence[float]] | None = None,
                scores_target: Sequence[Sequence[float]] | None = None) -> SlateLog:
    """Align logged and candidate slates position by position (positions the candidate's slate
    lacks are dropped: the estimand is the CTR of the positions both fill)."""
    if not (len(logged) == len(target) == len(clicks) == len(propensities)):
        raise InvalidInput("logged, target, clicks and propensities need one entry per slate",
                           field="target")
    cols: dict[str, list[float]] = {k: [] for k in ("g", "k", "r", "p", "m", "sl", "st",
                                                    "lpt")}
    with_scores = scores_logged is not None and scores_target is not None
    # per slate, not per row: this runs over every explored impression of a dataset
    for i, (a, t, c, p) in enumerate(zip(logged, target, clicks, propensities, strict=True)):
        if len(a) != len(c) or len(a) != len(p):
            raise InvalidInput(f"slate {i}: clicks and propensities must align with the items",
                               field="propensities")
        n = min(len(a), len(t))
        pf = [float(x) for x in p]
        for k in range(n):
            if not 0.0 < pf[k] <= 1.0:
                raise InvalidInput(f"slate {i} position {k}: propensity {p[k]!r} not in (0, 1]",
                                   field="propensities")
        shown_p = dict(zip(a, pf, strict=True))
        least = min(pf, default=1.0)
        cols["g"].extend([i] * n)
        cols["k"].extend(range(n))
        cols["r"].extend(float(bool(x)) for x in c[:n])
        cols["p"].extend(pf[:n])
        cols["m"].extend(float(a[k] == t[k]) for k in range(n))
        cols["lpt"].extend(shown_p.get(t[k], least) for k in range(n))
        if with_scores:
            assert scores_logged is not None and scores_target is not None
            cols["sl"].extend(float(x) for x in scores_logged[i][:n])
            cols["st"].extend(float(x) for x in scores_target[i][:n])
    arr = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
    return SlateLog(arr["g"].astype(np.int64), arr["k"].astype(np.int64), arr["r"], arr["p"],
                    arr["m"], arr["sl"] if with_scores else None,
                    arr["st"] if with_scores else None, np.log(arr["lpt"]))


def _features(score: np.ndarray, position: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(score), score, np.log1p(position)])


def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 25
                  ) -> np.ndarray:
    """Newton-Raphson logistic regression with a small ridge (no intercept penalty)."""
    beta = np.zeros(x.shape[1])
    prior = np.clip(y.mean(), 1e-4, 1 - 1e-4)
    beta[0] = np.log(prior / (1 - prior))
    pen = np.full(x.shape[1], l2 * len(y))
    pen[0] = 0.0
    for _ in range(iters):
        mu = 1.0 / (1.0 + np.exp(-x @ beta))
        grad = x.T @ (y - mu) - pen * beta
        hess = (x * (mu * (1 - mu))[:, None]).T @ x + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def reward_model(log: SlateLog, folds: int = 2, propensity: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(q_logged, q_target) per row: P(click) from the candidate's score and the position
    (and with `propensity` the log logging propensity, see the module docstring), fitted on
    the other folds' slates (cross-fitting)."""
    if log.score_logged is None or log.score_target is None:
        raise InvalidInput("the reward model needs the candidate's scores", field="scores")
    # standardise scores so the ridge and Newton steps see unit-scale features
    mu, sd = float(log.score_logged.mean()), float(log.score_logged.std()) or 1.0
    x_log = _features((log.score_logged - mu) / sd, log.position)
    x_tgt = _features((log.score_target - mu) / sd, log.position)
    if propensity:
        if log.logp_target is None:
            raise InvalidInput("the propensity reward model needs logp_target",
                               field="logp_target")
        lp = np.log(log.p_log)
        lmu, lsd = float(lp.mean()), float(lp.std()) or 1.0
        x_log = np.column_stack([x_log, (lp - lmu) / lsd])
        x_tgt = np.column_stack([x_tgt, (log.logp_target - lmu) / lsd])
    fold = log.group % folds
    q_log, q_tgt = np.empty(log.reward.size), np.empty(log.reward.size)
    for f in range(folds):
        test = fold == f
        train = ~test if folds > 1 else test
        beta = _logistic_fit(x_log[train], log.reward[train])
        q_log[test] = 1.0 / (1.0 + np.exp(-x_log[test] @ beta))
        q_tgt[test] = 1.0 / (1.0 + np.exp(-x_tgt[test] @ beta))
    return q_log, q_tgt


def evaluate(log: SlateLog, alpha: float = 0.05) -> dict[str, OpeEstimate]:
    """IPS, SNIPS and (with the candidate's scores) DR estimates of the candidate's CTR."""
    if log.reward.size == 0:
        raise InvalidInput("no explored slates to evaluate", field="dataset")
    base = LoggedData(reward=log.reward, p_log=log.p_log, p_target=log.match, group=log.group)
    out = evaluate_all(base, alpha)
    if log.score_logged is None or log.score_target is None:
        return out
    fits = {"dr_score": reward_model(log)}
    if log.logp_target is not None:
        fits["dr_propensity"] = reward_model(log, propensity=True)
    for name, (q_log, q_tgt) in fits.items():
        e = doubly_robust(replace(base, q_logged=q_log, q_target=q_tgt), alpha)
        out[name] = replace(e, estimator=name)
    # the midpoint: DR with the average reward model; the half-distance bounds extrapolation
    q_log = np.mean([f[0] for f in fits.values()], axis=0)
    q_tgt = np.mean([f[1] for f in fits.values()], axis=0)
    mid = doubly_robust(replace(base, q_logged=q_log, q_target=q_tgt), alpha)
    values = [out[name].value for name in fits]
    out["dr"] = with_bias_bound(mid, (max(values) - min(values)) / 2.0, alpha)
    return out


def summary(log: SlateLog) -> dict[str, float]:
    """Diagnostics: how much of the candidate's slate the logs can speak for."""
    w = log.match / log.p_log
    return {"slates": log.n_slates, "rows": int(log.reward.size),
            "logged_ctr": float(log.reward.mean()) if log.reward.size else float("nan"),
            "match_rate": float(log.match.mean()) if log.reward.size else float("nan"),
            "mean_weight": float(w.mean()) if log.reward.size else float("nan"),
            "effective_sample_size": float(w.sum() ** 2 / max((w**2).sum(), 1e-300))}
