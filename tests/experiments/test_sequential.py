"""Group-sequential boundaries: the published O'Brien-Fleming table, and the type-I error of
the boundaries under H0 by simulation of the Brownian score process."""

from __future__ import annotations

import numpy as np
import pytest

from newsdesk.errors import InvalidInput
from newsdesk.experiments.sequential import GroupSequential, spent_alpha


def test_obrien_fleming_matches_the_published_boundaries() -> None:
    # Lan-DeMets O'Brien-Fleming spending, five equally spaced looks, two-sided 0.05
    # (gsDesign sfLDOF, one-sided 0.025 per side): 4.877 3.357 2.680 2.290 2.031
    b = GroupSequential(0.05, "obf").boundaries([0.2, 0.4, 0.6, 0.8, 1.0])
    assert b == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3)


def test_one_look_is_the_fixed_horizon_test() -> None:
    for spending in ("obf", "pocock"):
        assert GroupSequential(0.05, spending).boundaries([1.0])[0] == pytest.approx(1.95996,
                                                                                     abs=1e-4)
    assert spent_alpha(1.0, 0.05, "obf") == pytest.approx(0.05)
    assert spent_alpha(1.0, 0.05, "pocock") == pytest.approx(0.05)


@pytest.mark.parametrize("spending", ["obf", "pocock"])
def test_type_one_error_under_many_uneven_looks(spending: str) -> None:
    rng = np.random.default_rng(1)
    fractions = np.sort(rng.uniform(0.02, 1.0, 29))
    fractions = np.append(fractions, 1.0)
    bounds = GroupSequential(0.05, spending).boundaries(fractions)
    n = 60_000
    steps = rng.normal(size=(n, fractions.size)) * np.sqrt(np.diff(fractions, prepend=0.0))
    z = np.cumsum(steps, 1) / np.sqrt(fractions)
    fpr = (np.abs(z) >= bounds).any(1).mean()
    assert abs(fpr - 0.05) < 3.5 * np.sqrt(0.05 * 0.95 / n)
    # and one decision helper agrees with the vectorised form
    first = GroupSequential(0.05, spending).first_rejection(z[0], fractions)
    hit = np.abs(z[0]) >= bounds
    assert first == (int(np.argmax(hit)) if hit.any() else None)


def test_looks_past_the_plan_reuse_the_last_boundary_and_bad_inputs() -> None:
    g = GroupSequential(0.05, "obf")
    b = g.boundaries([0.5, 1.0, 1.2])
    assert b[2] == b[1]
    with pytest.raises(InvalidInput) as err:
        g.boundaries([0.5, 0.4])
    assert err.value.field == "fractions"
    with pytest.raises(InvalidInput):
        GroupSequential(0.05, "linear")  # type: ignore[arg-type]
