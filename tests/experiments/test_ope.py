"""IPS / SNIPS / DR on a tiny hand-computed log, clustering, and unbiasedness on a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from newsdesk.errors import InvalidInput
from newsdesk.experiments.ope import LoggedData, doubly_robust, evaluate_all, ips, snips

# w = [2, 1, 2, 0.25]; w r = [2, 0, 2, 0]
LOG = LoggedData(reward=np.array([1, 0, 1, 0]), p_log=np.array([0.5, 0.5, 0.25, 0.8]),
                 p_target=np.array([1.0, 0.5, 0.5, 0.2]),
                 q_logged=np.full(4, 0.5), q_target=np.full(4, 0.6))


def test_ips_hand_worked() -> None:
    e = ips(LOG)
    assert e.value == pytest.approx(1.0)
    assert e.se == pytest.approx(math.sqrt(1 / 3))  # sample var 4/3 over 4 rows
    assert e.max_weight == 2.0


def test_snips_hand_worked() -> None:
    e = snips(LOG)
    assert e.value == pytest.approx(4 / 5.25)
    v = 4 / 5.25
    u = np.array([2 * (1 - v), -v, 2 * (1 - v), -0.25 * v])
    assert e.se == pytest.approx(math.sqrt((u**2).sum() / 5.25**2 * 4 / 3))


def test_dr_hand_worked() -> None:
    # terms 0.6 + w (r - 0.5) = [1.6, 0.1, 1.6, 0.475]
    e = doubly_robust(LOG)
    assert e.value == pytest.approx(3.775 / 4)
    assert e.se == pytest.approx(np.std([1.6, 0.1, 1.6, 0.475], ddof=1) / 2)
    assert set(evaluate_all(LOG)) == {"ips", "snips", "dr"}


def test_grouping_sums_rows_of_one_impression() -> None:
    grouped = LoggedData(LOG.reward, LOG.p_log, LOG.p_target, group=np.array([0, 0, 1, 1]))
    e = ips(grouped)
    # group sums [2, 2], sizes [2, 2], mean 1: residuals [0, 0] -> se 0
    assert e.value == pytest.approx(1.0) and e.se == pytest.approx(0.0) and e.n_groups == 2


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(InvalidInput, match="p_log"):
        LoggedData(np.ones(2), np.array([0.5, 0.0]), np.ones(2))
    with pytest.raises(InvalidInput, match="p_target"):
        LoggedData(np.ones(2), np.ones(2), np.ones(3))
    with pytest.raises(InvalidInput, match="q_logged"):
        doubly_robust(LoggedData(np.ones(2), np.ones(2), np.ones(2)))


def test_estimates_cover_the_true_value_of_a_simulated_policy() -> None:
    rng = np.random.default_rng(5)
    n_items, n = 5, 40_000
    ctr = np.array([0.02, 0.05, 0.08, 0.03, 0.12])
    logging = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    target = np.array([0.05, 0.1, 0.3, 0.05, 0.5])
    a = rng.choice(n_items, size=n, p=logging)
    r = rng.random(n) < ctr[a]
    q = ctr + rng.normal(0, 0.01, n_items)  # an imperfect reward model
    data = LoggedData(r.astype(float), logging[a], target[a], q_logged=q[a],
                      q_target=np.full(n, (target * q).sum()))
    truth = float((target * ctr).sum())
    for est in evaluate_all(data).values():
        assert est.covers(truth), est
    assert doubly_robust(data).se < ips(data).se
