"""Paired bootstrap: coverage of the true difference, pairing, NaN handling, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from newsdesk.evaluation.bootstrap import compare_systems, paired_bootstrap


def test_interval_covers_the_true_difference_on_synthetic_data() -> None:
    true_diff = 0.03
    covered = 0
    trials = 60
    for t in range(trials):
        rng = np.random.default_rng(1000 + t)
        difficulty = rng.uniform(0.2, 0.8, 400)  # shared per-unit difficulty
        a = np.clip(difficulty + rng.normal(0, 0.05, 400), 0, 1)
        b = np.clip(difficulty + true_diff + rng.normal(0, 0.05, 400), 0, 1)
        res = paired_bootstrap(a, b, n_resamples=400, seed=t)
        covered += res.ci_low <= true_diff <= res.ci_high
    # nominal 95% (57 of 60); the bound allows the sampling noise of 60 trials
    assert covered >= 51


def test_is_paired_a_constant_shift_has_a_zero_width_interval() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 500)  # huge between-unit spread
    res = paired_bootstrap(a, a + 0.01, n_resamples=300)
    # an unpaired bootstrap would give a width of about 0.1 here
    assert res.ci_low == pytest.approx(0.01) and res.ci_high == pytest.approx(0.01)
    assert res.significant and res.p_value == 0.0


def test_nan_units_are_dropped_for_both_systems_and_seed_is_deterministic() -> None:
    a = np.array([0.5, np.nan, 0.2, 0.9, 0.4])
    b = np.array([0.6, 0.7, np.nan, 0.8, 0.6])
    res = paired_bootstrap(a, b, n_resamples=200, seed=3)
    assert res.n_units == 3
    assert res.mean_a == pytest.approx(0.6) and res.mean_b == pytest.approx(2.0 / 3)
    assert paired_bootstrap(a, b, n_resamples=200, seed=3) == res
    assert not paired_bootstrap(a, a, n_resamples=50).significant


def test_compare_systems_against_a_baseline() -> None:
    per_unit = {"base": {"auc": np.array([0.5, 0.6, 0.7])},
                "new": {"auc": np.array([0.6, 0.7, 0.8])}}
    (c,) = compare_systems(per_unit, "base", n_resamples=100)
    assert (c.system_a, c.system_b, c.metric) == ("base", "new", "auc")
    assert c.diff == pytest.approx(0.1)
    with pytest.raises(ValueError, match="baseline"):
        compare_systems(per_unit, "missing")
