"""Paired bootstrap confidence intervals for comparing two systems on the same units.

Both systems are scored on the same units (impressions or users). A resample draws unit
indices with replacement once and applies the SAME indices to both systems, so the interval
is for the difference B - A under the units' shared difficulty (much tighter than two
independent intervals). Units where either system's value is NaN (e.g. AUC of an impression
with no click) are dropped before resampling, so both means cover the same units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """B versus A on one metric: means, the difference B - A and its percentile interval."""

    metric: str
    system_a: str
    system_b: str
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    n_units: int
    n_resamples: int
    p_value: float  # two-sided bootstrap p-value for "no difference"

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["significant"] = self.significant
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairedComparison:
        """The inverse of `to_dict` (which adds the derived `significant`)."""
        return cls(**{k: v for k, v in d.items() if k != "significant"})


def paired_bootstrap(values_a: Sequence[float] | np.ndarray, values_b: Sequence[float] | np.ndarray,
                     *, metric: str = "metric", system_a: str = "A", system_b: str = "B",
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
                     ) -> PairedComparison:
    """Paired bootstrap of mean(B) - mean(A) over units; values are per-unit metric values.

    `values_a[i]` and `values_b[i]` must belong to the same unit i.
    """
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"values_a and values_b must be 1-D and paired; got {a.shape}, {b.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1; got {n_resamples}")
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    n = len(a)
    if n == 0:
        nan = math.nan
        return PairedComparison(metric, system_a, system_b, nan, nan, nan, nan, nan, confidence,
                                0, n_resamples, nan)
    d = b - a
    rng = np.random.default_rng(seed)
    # resample in chunks so memory stays bounded for large unit counts
    diffs = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, min(n_resamples, 20_000_000 // max(n, 1)))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        diffs[start:stop] = d[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(diffs, [alpha, 1.0 - alpha])
    # share of resampled differences on the other side of zero, two-sided
    p = 2.0 * min(float(np.mean(diffs <= 0.0)), float(np.mean(diffs >= 0.0)))
    return PairedComparison(
        metric=metric, system_a=system_a, system_b=system_b, mean_a=float(a.mean()),
        mean_b=float(b.mean()), diff=float(d.mean()), ci_low=float(lo), ci_high=float(hi),
        confidence=confidence, n_units=n, n_resamples=n_resamples, p_value=min(1.0, p),
    )


def compare_systems(per_unit: dict[str, dict[str, np.ndarray]], baseline: str,
                    metrics: Sequence[str] | None = None, *, n_resamples: int = 1000,
                    confidence: float = 0.95, seed: int = 0) -> list[PairedComparison]:
    """Every system against `baseline` on every metric.

    per_unit: system -> metric -> per-unit values (same unit order for every system).
    """
    if baseline not in per_unit:
        raise ValueError(f"baseline {baseline!r} is not one of the systems {sorted(per_unit)}")
    names = list(metrics) if metrics is not None else list(per_unit[baseline])
    out = []
    for system, values in per_unit.items():
        if system == baseline:
            continue
        for m in names:
            out.append(paired_bootstrap(per_unit[baseline][m], values[m], metric=m,
                                        system_a=baseline, system_b=system,
                                        n_resamples=n_resamples, confidence=confidence,
                                        seed=seed))
    return out
