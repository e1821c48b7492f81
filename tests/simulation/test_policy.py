"""The logging policy: inclusion probabilities are valid and the sampler realises them exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.errors import InvalidInput
from newsdesk.simulation.policy import (
    capped_proportional,
    inclusion_probabilities,
    systematic_sample,
)

weights_st = st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(weights=weights_st, slate=st.integers(1, 20), eps=st.floats(0.01, 1.0))
def test_inclusion_probabilities_are_valid(weights: list[float], slate: int, eps: float) -> None:
    pi = inclusion_probabilities(np.array(weights), slate, eps)
    assert pi.shape == (len(weights),)
    assert np.all(pi > 0) and np.all(pi <= 1.0 + 1e-12)
    assert pi.sum() == pytest.approx(min(slate, len(weights)), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(weights=weights_st, slate=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_systematic_sample_rows_are_distinct_and_full(weights: list[float], slate: int,
                                                      seed: int) -> None:
    pi = inclusion_probabilities(np.array(weights), slate, 0.2)
    rows = systematic_sample(pi, 50, np.random.default_rng(seed))
    assert rows.shape == (50, min(slate, len(weights)))
    for row in rows:
        assert len(set(row.tolist())) == row.size


def test_capped_proportional_caps_heavy_items() -> None:
    pi = capped_proportional(np.array([100.0, 1.0, 1.0, 1.0, 1.0]), 3)
    assert pi[0] == 1.0
    np.testing.assert_allclose(pi[1:], 0.5)
    with pytest.raises(InvalidInput, match="weights"):
        capped_proportional(np.array([1.0, 0.0]), 2)


def test_empirical_inclusion_and_position_frequencies_match_propensities() -> None:
    rng = np.random.default_rng(3)
    weights = rng.lognormal(0.0, 1.5, size=40)
    slate, n = 6, 60_000
    pi = inclusion_probabilities(weights, slate, 0.2)
    rows = systematic_sample(pi, n, rng)
    counts = np.bincount(rows.ravel(), minlength=pi.size)
    z = (counts - n * pi) / np.sqrt(n * pi * (1 - pi) + 1e-12)
    z = z[pi < 1]  # items with pi == 1 are always shown (variance 0)
    assert np.abs(z).max() < 5.0
    # positions are shuffled uniformly: P(item at position k) = pi / S
    first = np.bincount(rows[:, 0], minlength=pi.size)
    p0 = pi / slate
    z0 = (first - n * p0) / np.sqrt(n * p0 * (1 - p0))
    assert np.abs(z0).max() < 5.0
    # and a wrong propensity (plain weight share) is rejected by the same check
    wrong = np.minimum(1.0, slate * weights / weights.sum())
    z_wrong = (counts - n * wrong) / np.sqrt(n * wrong * (1 - wrong) + 1e-9)
    assert np.abs(z_wrong).max() > 10.0


def test_small_catalogs_show_everything() -> None:
    pi = inclusion_probabilities(np.array([1.0, 2.0, 3.0]), 10, 0.1)
    np.testing.assert_array_equal(pi, 1.0)
    rows = systematic_sample(pi, 5, np.random.default_rng(0))
    assert sorted(rows[0].tolist()) == [0, 1, 2]
