"""Thompson sampling propensities and the versioned registry with its audit log."""

from __future__ import annotations

import numpy as np
import pytest

from newsdesk.errors import ConfigError
from newsdesk.experiments.bandits import ThompsonSampler, prob_beta_greater
from newsdesk.experiments.config import ExperimentConfig, Status
from newsdesk.experiments.registry import InMemoryExperimentRegistry, SqliteExperimentRegistry


@pytest.mark.parametrize("params", [(1, 1, 1, 1), (12, 30, 8, 25), (3.5, 9, 4, 7.5)])
def test_closed_form_two_arm_probability_matches_monte_carlo(params: tuple) -> None:
    a1, b1, a2, b2 = params
    rng = np.random.default_rng(0)
    mc = (rng.beta(a1, b1, 400_000) > rng.beta(a2, b2, 400_000)).mean()
    assert prob_beta_greater(a1, b1, a2, b2) == pytest.approx(mc, abs=0.004)


def test_thompson_logs_propensities_and_learns() -> None:
    ts = ThompsonSampler(["control", "treatment", "t2"], seed=1, n_mc=2_000)
    truth = {"control": 0.04, "treatment": 0.08, "t2": 0.02}
    rng = np.random.default_rng(2)
    for _ in range(3_000):
        d = ts.choose()
        assert 0 < d.propensity <= 1 and d.propensity == d.probabilities[d.arm]
        assert sum(d.probabilities.values()) == pytest.approx(1.0)
        ts.update(d.arm, float(rng.random() < truth[d.arm]))
    assert ts.probabilities()[1] > 0.8
    assert ts.state()["treatment"]["mean"] == pytest.approx(0.08, abs=0.02)
    slot = ts.fill_slot(["control", "t2"])
    assert slot.arm in {"control", "t2"} and set(slot.probabilities) == {"control", "t2"}


def _cfg(**kw: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"id": "e1", "variants": [{"name": "c"}, {"name": "t"}], **kw})


def test_registry_versions_and_audit(tmp_path) -> None:
    reg = SqliteExperimentRegistry(tmp_path / "reg.sqlite")
    assert reg.put(_cfg(), "alice").version == 1
    assert reg.put(_cfg(), "alice").version == 1  # unchanged content: no new version
    assert reg.put(_cfg(traffic=0.5), "bob").version == 2
    reg.set_status("e1", Status.STOPPED, "carol")
    reg.close()
    again = SqliteExperimentRegistry(tmp_path / "reg.sqlite")  # persisted
    assert again.get("e1").version == 3 and again.get("e1").config.status is Status.STOPPED
    assert again.get("e1", version=1).config.traffic == 1.0
    log = again.audit("e1")
    assert [(a.actor, a.action, a.version) for a in log] == [
        ("alice", "create", 1), ("bob", "update", 2), ("carol", "status", 3)]
    assert log[1].changed_fields == ["traffic"]
    assert [s.config.id for s in again.latest()] == ["e1"]


def test_registry_errors() -> None:
    reg = InMemoryExperimentRegistry()
    with pytest.raises(ConfigError, match="actor"):
        reg.put(_cfg(), "")
    with pytest.raises(ConfigError, match="no experiment 'zz'"):
        reg.get("zz")


def test_logged_thompson_propensities_give_unbiased_ips() -> None:
    """IPS of 'always serve treatment' from a Thompson-sampled log covers the true CTR."""
    from newsdesk.experiments.ope import LoggedData, ips, snips

    truth = {"control": 0.05, "treatment": 0.08}
    covered = 0
    for seed in range(20):
        ts = ThompsonSampler(["control", "treatment"], seed=seed, min_propensity=0.05)
        rng = np.random.default_rng(100 + seed)
        rewards, p_log, p_target = [], [], []
        for _ in range(1_500):
            d = ts.choose()
            r = float(rng.random() < truth[d.arm])
            ts.update(d.arm, r)
            rewards.append(r)
            p_log.append(d.propensity)
            p_target.append(1.0 if d.arm == "treatment" else 0.0)
        data = LoggedData(np.array(rewards), np.array(p_log), np.array(p_target))
        covered += ips(data).covers(0.08) and snips(data).covers(0.08)
    assert covered >= 16
