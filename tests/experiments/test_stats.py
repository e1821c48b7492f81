"""Estimators against reference values: delta method vs bootstrap, SRM vs scipy, mSPRT, CUPED."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from newsdesk.experiments import stats


def _users(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shown = rng.poisson(20, n) + 1
    ctr = rng.beta(2, 40, n)  # heterogeneous users
    return rng.binomial(shown, ctr).astype(float), shown.astype(float)


def test_delta_method_se_matches_bootstrap() -> None:
    rng = np.random.default_rng(0)
    clicks, shown = _users(3_000, rng)
    est = stats.ratio_estimate(clicks, shown)
    idx = rng.integers(0, clicks.size, size=(2_000, clicks.size))
    boot = clicks[idx].sum(1) / shown[idx].sum(1)
    assert est.value == pytest.approx(clicks.sum() / shown.sum())
    assert est.se == pytest.approx(boot.std(ddof=1), rel=0.08)


def test_linearized_ratio_has_delta_method_variance() -> None:
    rng = np.random.default_rng(1)
    clicks, shown = _users(2_000, rng)
    lin = stats.linearize_ratio(clicks, shown)
    est = stats.ratio_estimate(clicks, shown)
    assert lin.mean() == pytest.approx(est.value)
    assert stats.mean_estimate(lin).se == pytest.approx(est.se, rel=1e-6)


def test_difference_hand_worked() -> None:
    d = stats.difference(stats.Estimate(0.10, 0.003, 100), stats.Estimate(0.11, 0.004, 100))
    assert d.diff == pytest.approx(0.01)
    assert d.se == pytest.approx(0.005)
    assert d.p_value == pytest.approx(2 * (1 - 0.9772498680518208), rel=1e-6)  # z = 2
    assert d.rel_lift == pytest.approx(0.1)
    rel_se = math.sqrt(0.004**2 / 0.01 + 0.11**2 * 0.003**2 / 0.10**4)
    assert d.rel_ci_high - d.rel_lift == pytest.approx(1.959963984540054 * rel_se)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=2, max_size=5),
       st.lists(st.floats(0.1, 10), min_size=5, max_size=5))
def test_srm_p_value_matches_scipy(counts: list[int], weights: list[float]) -> None:
    if sum(counts) == 0:
        return
    w = np.array(weights[: len(counts)])
    res = stats.srm_test(counts, w)
    ref = chisquare(counts, np.array(counts).sum() * w / w.sum())
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)


def test_srm_flags_a_half_percent_mismatch_at_scale() -> None:
    # 0.5 % fewer treatment users than 50/50 at 2 million users: a broken logger
    res = stats.srm_test([1_002_500, 997_500], [1, 1])
    assert res.mismatch and res.p_value < 1e-3
    assert not stats.srm_test([100_120, 99_880], [1, 1]).mismatch


def test_msprt_boundary_and_monotone_pvalues() -> None:
    var, tau2, alpha = 1e-4, 4e-4, 0.05
    b = stats.msprt_boundary(var, tau2, alpha)
    # hand-worked: 2 v (v + t) (ln(1/a) - 0.5 ln(v/(v+t))) / t
    expected = math.sqrt(2 * 1e-4 * 5e-4 * (math.log(20) - 0.5 * math.log(0.2)) / 4e-4)
    assert b == pytest.approx(expected)
    assert stats.msprt_lambda(b, var, tau2) == pytest.approx(1 / alpha)
    p = stats.msprt_pvalues(np.array([0.0, 0.5 * b, 1.01 * b, 0.0]), np.full(4, var), tau2)
    assert p[2] < alpha <= p[1] and p[3] == p[2]  # always-valid p never goes back up
    assert np.all(np.diff(p) <= 0)


def test_cuped_keeps_the_mean_and_cuts_variance() -> None:
    rng = np.random.default_rng(3)
    x = rng.poisson(5, 20_000).astype(float)
    y = 0.8 * x + rng.normal(0, 1, x.size)
    theta = stats.cuped_theta(y, x)
    adj = stats.cuped(y, x, theta, x.mean())
    assert theta == pytest.approx(0.8, abs=0.02)
    assert adj.mean() == pytest.approx(y.mean())
    rho2 = np.corrcoef(x, y)[0, 1] ** 2
    assert adj.var() == pytest.approx(y.var() * (1 - rho2), rel=0.01)
    assert stats.cuped_theta(y, np.ones_like(y)) == 0.0
