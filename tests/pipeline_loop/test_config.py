"""The pipeline config refuses bad values with errors that name the field; the CLI turns
them (and a missing Spark engine) into one line and exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsdesk.cli.pipeline_cmds import parse_every
from newsdesk.errors import ConfigError
from newsdesk.pipelines.config import PipelineConfig

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize(("data", "field"), [
    ({"gate": {"margin": -0.1}}, "gate.margin"),
    ({"gate": {"primary_metric": "accuracy"}}, "gate.primary_metric"),
    ({"gate": {"guardrails": {"ctr": 0.0}}}, "gate.guardrails"),
    ({"gate": {"guardrails": {"mrr": 2.0}}}, "gate.guardrails"),
    ({"gate": {"rule": "median"}}, "gate.rule"),
    ({"evaluation": {"window_hours": 0}}, "evaluation.window_hours"),
    ({"evaluation": {"max_scored_impressions": 5}}, "evaluation.max_scored_impressions"),
    ({"retry": {"attempts": 0}}, "retry.attempts"),
    ({"train": {"ranker": {"num_leaves": 1}}}, "train.ranker.num_leaves"),
    ({"gates": {}}, "gates"),
])
def test_bad_values_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        PipelineConfig.from_dict(data)


def test_yaml_with_a_train_config_file(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text("embedder: hashing\nranker: {num_leaves: 5}\n")
    (tmp_path / "p.yaml").write_text("gate: {margin: 0.01}\ntrain_config: train.yaml\n")
    cfg = PipelineConfig.from_yaml(tmp_path / "p.yaml")
    assert cfg.gate.margin == 0.01 and cfg.train.ranker.num_leaves == 5
    assert cfg.train.embedder == "hashing"


def test_every_durations() -> None:
    assert parse_every("1h") == 3600 and parse_every("30m") == 1800 and parse_every("90") == 90
    with pytest.raises(ConfigError, match="--every"):
        parse_every("soon")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsdesk.cli.main", "pipeline", "run", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"})


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gate:\n  margin: -1\n")
    out = _cli("--dataset", str(tmp_path), "--bundles", str(tmp_path / "b"), "--config",
               str(bad), "--once")
    assert out.returncode == 1
    assert "field 'gate.margin'" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = _cli("--dataset", str(tmp_path), "--bundles", str(tmp_path / "b"), "--once",
               "--engine", "flink")
    assert out.returncode == 1 and "field 'engine'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert len(out.stderr.strip().splitlines()) == 1
