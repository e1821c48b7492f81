"""Analysis end to end: a dataset directory in, report (Markdown, PNG, JSON) out, via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from newsdesk.data.dataset import DatasetWriter
from newsdesk.errors import DatasetError
from newsdesk.experiments.analysis import analyze_dataset
from newsdesk.experiments.assignment import Assigner
from newsdesk.experiments.config import parse_suite
from newsdesk.experiments.exposure import Exposure

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SUITE = parse_suite([
    {"id": "other", "layer": "ui", "variants": [{"name": "control"}, {"name": "x"}]},
    {"id": "rank", "layer": "ranking", "variants": [{"name": "control"}, {"name": "treatment"}]},
])


def make_dataset(root: Path, n_users: int = 1_500, lift: float = 0.0, drop: float = 0.0,
                 seed: int = 0) -> Path:
    """Users with heterogeneous CTRs; treatment multiplies CTR by 1 + lift; `drop` removes a
    share of treatment users' impressions from the log (a logging bug -> SRM)."""
    rng = np.random.default_rng(seed)
    assigner = Assigner.from_config(SUITE)
    base = rng.beta(2, 30, n_users)
    ev = 0
    with DatasetWriter(root, source="test") as w:
        imps, acts = w.table("impressions"), w.table("interactions")
        for u in range(n_users):
            uid = f"u{u}"
            assigned = assigner.assign(uid)
            arm = next(a.variant for a in assigned if a.experiment_id == "rank")
            if arm == "treatment" and rng.random() < drop:
                continue
            p = base[u] * (1 + lift if arm == "treatment" else 1)
            for k in range(rng.poisson(3)):  # pre-period clicks, the CUPED covariate
                acts.write_row({"event_id": f"e{ev}", "type": "click", "user_id": uid,
                                "article_id": "a0", "timestamp": T0 - timedelta(days=1 + k % 5)})
                ev += 1
            for r in range(1 + rng.poisson(4)):
                ts = T0 + timedelta(hours=float(rng.uniform(0, 72)))
                arts = [f"a{j}" for j in range(10)]
                rid = f"r{u}-{r}"
                imps.write_row(Exposure(rid, uid, "front_page", arts, assigned,
                                        [1.0] * 10, ts).to_row())
                for j in np.flatnonzero(rng.random(10) < p):
                    acts.write_row({"event_id": f"e{ev}", "type": "click", "user_id": uid,
                                    "article_id": arts[j], "timestamp": ts, "request_id": rid})
                    acts.write_row({"event_id": f"e{ev}d", "type": "dwell", "user_id": uid,
                                    "article_id": arts[j], "timestamp": ts, "request_id": rid,
                                    "dwell_seconds": float(rng.exponential(40))})
                    ev += 1
    return root


@pytest.fixture(scope="module")
def lifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "lifted", lift=0.3, seed=1)


def test_analysis_finds_a_large_lift(lifted: Path) -> None:
    res = analyze_dataset(lifted, "rank")
    assert res["control"] == "control" and not res["conclusions_blocked"]
    assert res["days"] == 3
    ctr = res["comparisons"]["treatment"]["ctr"]
    assert ctr["fixed"]["rel_ci_low"] < 0.3 < ctr["fixed"]["rel_ci_high"]
    assert ctr["fixed"]["p_value"] < 0.01 and ctr["sequential"]["significant"]
    assert len(ctr["sequential"]["daily_p_values"]) == 3
    pv = res["per_variant"]
    assert pv["control"]["users"] + pv["treatment"]["users"] == 1_500
    assert pv["treatment"]["dwell_per_user"]["value"] > pv["control"]["dwell_per_user"]["value"]
    assert "better" in res["verdict"]


def test_srm_blocks_conclusions(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "srm", lift=0.3, drop=0.35, seed=2)
    res = analyze_dataset(ds, "rank")
    assert res["srm"]["mismatch"] and res["conclusions_blocked"]
    assert res["verdict"].startswith("SAMPLE RATIO MISMATCH")


def test_unknown_experiment_is_a_dataset_error(lifted: Path) -> None:
    with pytest.raises(DatasetError, match="no impressions of experiment 'nope'"):
        analyze_dataset(lifted, "nope")


def test_cli_report_writes_markdown_png_and_json(lifted: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("id: rank\nlayer: ranking\nvariants: [{name: control}, {name: treatment}]\n")
    out = subprocess.run(
        [sys.executable, "-m", "newsdesk.cli.main", "experiment", "report", "rank",
         "--dataset", str(lifted), "--json", str(tmp_path / "r.json"), "--out",
         str(tmp_path / "rep"), "--config", str(cfg)],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "Treatment vs control" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["experiment_id"] == "rank" and "ctr" in data["comparisons"]["treatment"]
    png = (tmp_path / "rep" / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (tmp_path / "rep" / "report.md").read_text().startswith("# Experiment rank")


def test_cli_validate_and_list(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nvariants: [{name: c, weight: 0}, {name: t}]\n")
    cmd = [sys.executable, "-m", "newsdesk.cli.main", "experiment"]
    r = subprocess.run([*cmd, "validate", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "variants.0.weight" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text("id: x\nvariants: [{name: c}, {name: t}]\n")
    db = str(tmp_path / "reg.sqlite")
    r = subprocess.run([*cmd, "validate", str(good), "--register", "--registry", db,
                        "--actor", "alice"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "registered x version 1" in r.stdout
    r = subprocess.run([*cmd, "list", "--registry", db, "--json"], capture_output=True,
                       text=True, timeout=60)
    assert json.loads(r.stdout)[0]["id"] == "x"
