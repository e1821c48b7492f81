"""Off-policy evaluation of a new policy's CTR from logged slates: IPS, SNIPS, DR.

Item-level model (each slot is a decision, as in the "independent/position-based" slate
estimators): logged data has one row per (impression, slot) with

    reward        1 if the shown article was clicked, else 0
    p_log         probability the logging policy showed that article in that slot (> 0)
    p_target      probability the target policy would show it there
    q_logged      (DR) a reward model's prediction for the logged article in that slot
    q_target      (DR) the reward model's expected reward of the target policy in that slot,
                  sum_a pi_target(a | slot) q(a, slot)
    group         impression id: rows of one impression are summed before the variance, so
                  the CI is clustered by impression (slots of a slate are not independent)

Estimates are of CTR per slot (mean over rows; multiply by slate length for clicks per slate):

    IPS   = mean(w r),                 w = p_target / p_log
    SNIPS = sum(w r) / sum(w)
    DR    = mean(q_target + w (r - q_logged))

CIs are normal with the cluster (per-impression) variance; SNIPS uses the delta method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from newsdesk.errors import InvalidInput


@dataclass(frozen=True)
class OpeEstimate:
    estimator: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    n_rows: int
    n_groups: int
    max_weight: float
    # half-width added to the sampling CI for what the logs cannot identify (the reward
    # model's extrapolation where the logging policy had no support; slate_ope.evaluate)
    bias_bound: float = 0.0

    def to_dict(self) -> dict[str, float | str]:
        return self.__dict__.copy()

    def covers(self, truth: float) -> bool:
        return self.ci_low <= truth <= self.ci_high


@dataclass(frozen=True)
class LoggedData:
    reward: np.ndarray
    p_log: np.ndarray
    p_target: np.ndarray
    group: np.ndarray | None = None
    q_logged: np.ndarray | None = None
    q_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = np.asarray(self.reward).shape[0]
        for name in ("p_log", "p_target", "group", "q_logged", "q_target"):
            arr = getattr(self, name)
            if arr is not None and np.asarray(arr).shape[0] != n:
                raise InvalidInput(f"{name}: expected {n} rows like reward, got "
                                   f"{np.asarray(arr).shape[0]}", field=name)
        if np.any(np.asarray(self.p_log) <= 0):
            raise InvalidInput("p_log: logging propensities must be > 0", field="p_log")

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.p_target, float) / np.asarray(self.p_log, float)


def _groups(data: LoggedData) -> tuple[np.ndarray, int]:
    if data.group is None:
        n = len(data.reward)
        return np.arange(n), n
    codes, inv = np.unique(np.asarray(data.group), return_inverse=True)
    return inv, len(codes)


def _mean_ci(name: str, terms: np.ndarray, data: LoggedData, alpha: float) -> OpeEstimate:
    """Mean of per-row terms with a CI clustered by group."""
    inv, g = _groups(data)
    n = terms.size
    sums = np.bincount(inv, weights=terms, minlength=g)
    sizes = np.bincount(inv, minlength=g).astype(float)
    value = float(terms.mean())
    # cluster variance of the row mean: sum_g (S_g - m_g * mean)^2 / n^2 * g/(g-1)
    resid = sums - sizes * value
    var = float((resid**2).sum() / n**2 * g / max(g - 1, 1))
    return _make(name, value, math.sqrt(var), data, g, alpha)


def _make(name: str, value: float, se: float, data: LoggedData, g: int,
          alpha: float) -> OpeEstimate:
    z = norm.isf(alpha / 2)
    return OpeEstimate(name, value, se, value - z * se, value + z * se, len(data.reward), g,
                       float(data.weights.max()) if len(data.reward) else math.nan)


def ips(data: LoggedData, alpha: float = 0.05) -> OpeEstimate:
    """Inverse propensity scoring: unbiased when p_log > 0 wherever p_target > 0."""
    return _mean_ci("ips", data.weights * np.asarray(data.reward, float), data, alpha)


def snips(data: LoggedData, alpha: float = 0.05) -> OpeEstimate:
    """Self-normalised IPS: sum(w r) / sum(w); slightly biased, much lower variance."""
    w = data.weights
    r = np.asarray(data.reward, float)
    inv, g = _groups(data)
    value = float((w * r).sum() / w.sum())
    # delta method on the ratio of group sums: residual u_g = sum_g w (r - value)
    u = np.bincount(inv, weights=w * (r - value), minlength=g)
    wbar = w.sum() / g
    var = float((u**2).sum() / (g * wbar) ** 2 * g / max(g - 1, 1))
    return _make("snips", value, math.sqrt(var), data, g, alpha)


def with_bias_bound(e: OpeEstimate, bound: float, alpha: float = 0.05) -> OpeEstimate:
    """The estimate with its CI widened by `bound` on each side: value +- (z se + bound)."""
    z = norm.isf(alpha / 2)
    half = z * e.se + bound
    return OpeEstimate(e.estimator, e.value, e.se, e.value - half, e.value + half, e.n_rows,
                       e.n_groups, e.max_weight, bound)


def doubly_robust(data: LoggedData, alpha: float = 0.05) -> OpeEstimate:
    """Doubly robust: reward model plus IPS-weighted correction of its residual."""
    if data.q_logged is None or data.q_target is None:
        raise InvalidInput("doubly robust needs q_logged and q_target (a reward model)",
                           field="q_logged")
    r = np.asarray(data.reward, float)
    terms = np.asarray(data.q_target, float) + data.weights * (r - np.asarray(data.q_logged, float))
    return _mean_ci("dr", terms, data, alpha)


def evaluate_all(data: LoggedData, alpha: float = 0.05) -> dict[str, OpeEstimate]:
    """IPS, SNIPS and (when a reward model is given) DR."""
    out = {"ips": ips(data, alpha), "snips": snips(data, alpha)}
    if data.q_logged is not None and data.q_target is not None:
        out["dr"] = doubly_robust(data, alpha)
    return out
