"""Statistical primitives of experiment analysis (numpy in, floats out).

* `ratio_estimate`: a ratio metric sum(num)/sum(den) over users (e.g. CTR = clicks / articles
  shown) with its delta-method variance; users, not impressions, are the independent units.
* `difference`: treatment - control with a normal CI and a two-sided p-value, plus the relative
  lift and its delta-method CI.
* `srm_test`: chi-square goodness of fit of unit counts against the configured allocation.
* `cuped`: CUPED adjustment y - theta (x - mean x) with a pre-period covariate x.
* `msprt`: the mixture sequential probability ratio test (normal mixture, Johari et al. 2017)
  giving always-valid p-values, so the result can be looked at every day.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import chi2, norm


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float  # standard error of `value`
    n: int  # independent units (users)

    def ci(self, alpha: float = 0.05) -> tuple[float, float]:
        z = norm.isf(alpha / 2)
        return (self.value - z * self.se, self.value + z * self.se)

    def to_dict(self, alpha: float = 0.05) -> dict[str, float]:
        lo, hi = self.ci(alpha)
        return {"value": self.value, "se": self.se, "n": self.n, "ci_low": lo, "ci_high": hi}


def mean_estimate(y: np.ndarray) -> Estimate:
    """Mean of a per-user metric with its standard error; y shape (n_users,)."""
    y = np.asarray(y, dtype=float)
    n = y.size
    if n < 2:
        return Estimate(float(y.mean()) if n else math.nan, math.nan, n)
    return Estimate(float(y.mean()), float(y.std(ddof=1) / math.sqrt(n)), n)


def ratio_estimate(num: np.ndarray, den: np.ndarray) -> Estimate:
    """sum(num)/sum(den) with delta-method SE; num, den shape (n_users,), e.g. clicks, shown.

    Var(mean_y/mean_x) ~ (var_y - 2 R cov_xy + R^2 var_x) / (n mean_x^2), R = mean_y/mean_x.
    """
    y = np.asarray(num, dtype=float)
    x = np.asarray(den, dtype=float)
    n = y.size
    mx = x.mean() if n else math.nan
    if n < 2 or mx == 0:
        return Estimate(math.nan, math.nan, n)
    r = y.mean() / mx
    cov = np.cov(y, x, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * mx * mx)
    return Estimate(float(r), float(math.sqrt(max(var, 0.0))), n)


def linearize_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per-user linearization of a ratio metric: its mean equals the ratio to first order and
    its plain variance equals the delta-method variance (so CUPED/mSPRT apply to ratios)."""
    y = np.asarray(num, dtype=float)
    x = np.asarray(den, dtype=float)
    r = y.sum() / x.sum()
    return r + (y - r * x) / x.mean()


@dataclass(frozen=True)
class Difference:
    control: float
    treatment: float
    diff: float
    se: float
    p_value: float
    ci_low: float
    ci_high: float
    rel_lift: float
    rel_ci_low: float
    rel_ci_high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def difference(c: Estimate, t: Estimate, alpha: float = 0.05) -> Difference:
    """Treatment minus control of two independent estimates (normal approximation)."""
    z = norm.isf(alpha / 2)
    d = t.value - c.value
    se = math.sqrt(c.se**2 + t.se**2)
    p = float(2 * norm.sf(abs(d) / se)) if se > 0 else (1.0 if d == 0 else 0.0)
    rel = t.value / c.value - 1 if c.value else math.nan
    rel_se = (math.sqrt(t.se**2 / c.value**2 + t.value**2 * c.se**2 / c.value**4)
              if c.value else math.nan)
    return Difference(c.value, t.value, d, se, p, d - z * se, d + z * se,
                      rel, rel - z * rel_se, rel + z * rel_se)


@dataclass(frozen=True)
class SrmResult:
    counts: list[int]
    expected: list[float]
    statistic: float
    p_value: float
    threshold: float
    mismatch: bool  # True blocks conclusions


def srm_test(counts: np.ndarray | list[int], weights: np.ndarray | list[float],
             threshold: float = 0.001) -> SrmResult:
    """Chi-square test of observed unit counts per variant against allocation `weights`."""
    obs = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    exp = obs.sum() * w / w.sum()
    stat = float(((obs - exp) ** 2 / np.where(exp > 0, exp, 1.0)).sum())
    p = float(chi2.sf(stat, df=len(obs) - 1)) if obs.sum() > 0 else 1.0
    return SrmResult([int(v) for v in obs], exp.tolist(), stat, p, threshold, p < threshold)


def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """theta = cov(y, x) / var(x), pooled over all variants; 0 when x is constant."""
    x = np.asarray(x, dtype=float)
    vx = x.var(ddof=1) if x.size > 1 else 0.0
    if vx <= 0:
        return 0.0
    return float(np.cov(np.asarray(y, dtype=float), x, ddof=1)[0, 1] / vx)


def cuped(y: np.ndarray, x: np.ndarray, theta: float, x_mean: float) -> np.ndarray:
    """CUPED-adjusted per-user values: same mean (in expectation), smaller variance."""
    return np.asarray(y, dtype=float) - theta * (np.asarray(x, dtype=float) - x_mean)


def msprt_lambda(diff: np.ndarray | float, var: np.ndarray | float, tau2: float) -> np.ndarray:
    """Normal-mixture likelihood ratio for H0: diff = 0, mixing N(0, tau2) over the effect.

    diff: observed treatment - control; var: its variance (sigma^2 (1/n_t + 1/n_c)).
    """
    d = np.asarray(diff, dtype=float)
    v = np.asarray(var, dtype=float)
    return np.sqrt(v / (v + tau2)) * np.exp(tau2 * d * d / (2 * v * (v + tau2)))


def msprt_pvalues(diffs: np.ndarray, variances: np.ndarray, tau2: float) -> np.ndarray:
    """Always-valid p-values after each look: p_k = min(1, 1 / max_{j<=k} Lambda_j)."""
    lam = msprt_lambda(diffs, variances, tau2)
    lam = np.where(np.isfinite(lam), lam, 0.0)
    return np.minimum(1.0, 1.0 / np.maximum.accumulate(np.maximum(lam, 1e-300), axis=-1))


def msprt_boundary(var: float, tau2: float, alpha: float = 0.05) -> float:
    """|diff| at which mSPRT rejects: Lambda(diff, var) = 1/alpha, solved for diff."""
    log_term = math.log(1 / alpha) - 0.5 * math.log(var / (var + tau2))
    return math.sqrt(2 * var * (var + tau2) * log_term / tau2)
