"""Reports: Markdown, PNG and JSON are written and carry the numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from newsdesk.evaluation.bootstrap import paired_bootstrap
from newsdesk.evaluation.report import EvaluationReport


def test_report_writes_md_png_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 200)
    cmp_ = paired_bootstrap(a, a + 0.05, metric="auc", system_a="random", system_b="ctr",
                            n_resamples=200)
    report = EvaluationReport(
        "replay", systems={"random": {"auc": 0.5, "mrr": math.nan},
                           "ctr": {"auc": 0.55, "mrr": 0.3}},
        comparisons=[cmp_], meta={"impressions": 200})
    paths = report.write(tmp_path / "out" / "mind")
    data = json.loads(paths["json"].read_text())
    assert data["systems"]["ctr"]["auc"] == 0.55
    assert data["systems"]["random"]["mrr"] is None  # NaN -> null
    assert data["comparisons"][0]["significant"] is True
    md = paths["md"].read_text()
    assert "| ctr | 0.5500 | 0.3000 |" in md and "+0.0500" in md
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
