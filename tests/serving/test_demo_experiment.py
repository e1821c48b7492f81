"""The experiment demo end to end: a real `newsdesk serve` subprocess, a trained bundle, a
simulated world deciding clicks, and the on-demand report (a short run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("newsdesk.models.bundle")
pytest.importorskip("lightgbm")

pytestmark = [pytest.mark.ml, pytest.mark.slow]


def test_experiment_demo_runs_an_ab_test_through_the_service(tmp_path: Path) -> None:
    from threadpoolctl import threadpool_limits

    from newsdesk.demo_experiment import EXPERIMENT_ID, run_experiment_demo
    from newsdesk.pipelines.train import RankerConfig, TrainConfig, train

    dataset = tmp_path / "dataset"
    subprocess.run([sys.executable, "-m", "newsdesk.cli.main", "simulate", "--seed", "2",
                    "--users", "200", "--days", "1", "--impressions-per-day", "2000",
                    "--articles-per-day", "150", "--out", str(dataset)],
                   check=True, capture_output=True, timeout=120)
    config = TrainConfig(embedder="hashing",
                         ranker=RankerConfig(num_boost_round=10, min_data_in_leaf=5))
    with threadpool_limits(1, "blas"):
        train(dataset, tmp_path / "bundles", config)
    report = run_experiment_demo(dataset, tmp_path / "bundles", tmp_path / "out", duration_s=4)
    assert report["experiment_id"] == EXPERIMENT_ID
    per = report["per_variant"]
    assert set(per) == {"control", "treatment"}
    assert all(per[v]["users"] > 10 and per[v]["shown"] > 0 for v in per)
    assert report["srm"]["mismatch"] is False  # 50/50 assignment, every slate logged
    for name in ("report.md", "report.png", "report.json"):
        assert (tmp_path / "out" / name).is_file()


def test_personalised_lift_inverts_the_reports_treatment_comparison() -> None:
    from newsdesk.demo_experiment import personalised_lift

    report = {"comparisons": {"treatment": {"ctr": {"fixed": {
        "rel_lift": -0.5, "rel_ci_low": -0.6, "rel_ci_high": -0.4}}}}}
    lift = personalised_lift(report)
    assert lift is not None
    assert lift["lift"] == pytest.approx(1.0)
    assert lift["ci_low"] == pytest.approx(1 / 0.6 - 1)
    assert lift["ci_high"] == pytest.approx(1.5)
    assert personalised_lift({"comparisons": {}}) is None
