"""Staged rollouts: guardrail decisions, persisted state across processes, kill switch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from newsdesk.experiments.assignment import Assigner
from newsdesk.experiments.config import RolloutPlan, parse_suite
from newsdesk.experiments.rollout import (
    ArmStats,
    JsonFileRolloutStore,
    RolloutController,
    RolloutStatus,
    check_guardrails,
)

PLAN = RolloutPlan(stages=[0.01, 0.05, 0.25, 0.5, 1.0], min_requests_per_stage=2_000)
HEALTHY = ArmStats(requests=100_000, errors=500, p99_latency_ms=120, impressions=1_000_000,
                   clicks=40_000)


def _arm(requests: int, error_rate: float, ctr: float, p99: float = 120.0) -> ArmStats:
    return ArmStats(requests, round(requests * error_rate), p99, requests * 10,
                    round(requests * 10 * ctr))


def test_healthy_variant_advances_through_every_stage(tmp_path: Path) -> None:
    ctl = RolloutController(JsonFileRolloutStore(tmp_path / "state.json"))
    ctl.start("exp", PLAN, actor="alice")
    decisions = [ctl.evaluate("exp", HEALTHY, _arm(3_000, 0.005, 0.04)) for _ in range(5)]
    # 1 % -> 5 % -> 25 % -> 50 %, then passing at 50 % completes (100 % has no control left)
    assert decisions == ["advance"] * 3 + ["complete", "completed"]
    assert ctl.fraction("exp") == 1.0
    assert [h["fraction"] for h in ctl.state("exp").history] == [0.01, 0.05, 0.25, 0.5, 1.0]


def test_too_few_requests_holds() -> None:
    from newsdesk.experiments.rollout import InMemoryRolloutStore

    ctl = RolloutController(InMemoryRolloutStore())
    ctl.start("exp", PLAN)
    assert ctl.evaluate("exp", HEALTHY, _arm(500, 0.005, 0.04)) == "hold"
    assert ctl.fraction("exp") == 0.01


def test_broken_variants_roll_back() -> None:
    g = PLAN.guardrails
    errors = check_guardrails(g, HEALTHY, _arm(2_000, 0.055, 0.04))
    assert [r.name for r in errors if r.breached] == ["error_rate"]
    ctr = check_guardrails(g, HEALTHY, _arm(2_000, 0.005, 0.028))
    assert [r.name for r in ctr if r.breached] == ["ctr"]
    slow = check_guardrails(g, HEALTHY, _arm(2_000, 0.005, 0.04, p99=900))
    assert [r.name for r in slow if r.breached] == ["p99_latency_ms"]
    fine = check_guardrails(g, HEALTHY, _arm(3_000, 0.005, 0.04))
    assert not any(r.breached for r in fine) and all(r.holds for r in fine)


def test_rollback_sets_fraction_to_zero_and_audits(tmp_path: Path) -> None:
    ctl = RolloutController(JsonFileRolloutStore(tmp_path / "s.json"))
    ctl.start("exp", PLAN, actor="alice")
    assert ctl.evaluate("exp", HEALTHY, _arm(2_000, 0.06, 0.04)) == "rollback"
    state = ctl.state("exp")
    assert state.status is RolloutStatus.ROLLED_BACK and state.fraction == 0.0
    assert [h["event"] for h in state.history] == ["start", "rollback"]
    assert state.history[-1]["guardrails"][0]["name"] == "error_rate"


_CHILD = """
import sys
from newsdesk.experiments.rollout import JsonFileRolloutStore, RolloutController
ctl = RolloutController(JsonFileRolloutStore(sys.argv[1]))
if sys.argv[2] == "kill":
    ctl.kill("exp", actor="oncall", reason="pager")
print(ctl.state("exp").status.value, ctl.fraction("exp"), ctl.state("exp").stage)
"""


def _child(path: Path, action: str) -> str:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), action], check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def test_state_survives_restart_in_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ctl = RolloutController(JsonFileRolloutStore(path))
    ctl.start("exp", PLAN)
    ctl.evaluate("exp", HEALTHY, _arm(3_000, 0.005, 0.04))
    ctl.evaluate("exp", HEALTHY, _arm(3_000, 0.005, 0.04))
    assert _child(path, "read") == "running 0.25 2"
    del ctl
    again = RolloutController(JsonFileRolloutStore(path))  # a fresh object on the same file
    assert again.fraction("exp") == 0.25


def test_kill_switch_from_another_process_applies_to_next_request(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    suite = parse_suite({"id": "exp", "variants": [{"name": "control"}, {"name": "treatment"}],
                         "rollout": {"stages": [0.5, 1.0]}})
    ctl = RolloutController(JsonFileRolloutStore(path))
    ctl.start("exp", suite.get("exp").rollout or PLAN)
    assigner = Assigner.from_config(suite, rollouts=ctl)
    users = [f"u{i}" for i in range(2_000)]
    before = sum(assigner.assign(u)[0].variant == "treatment" for u in users)
    assert 850 < before < 1150
    assert _child(path, "kill") == "killed 0.0 0"
    after = sum(assigner.assign(u)[0].variant == "treatment" for u in users)
    assert after == 0
    # a killed rollout never advances on its own
    assert ctl.evaluate("exp", HEALTHY, _arm(3_000, 0.005, 0.04)) == "killed"
