"""Importers on the real samples in ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NEWSDESK = Path(sys.executable).parent / "newsdesk"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present"),
]


def _import(kind: str, folder: str, out: Path) -> tuple[dict, dict]:
    result = subprocess.run([str(NEWSDESK), "import", kind, str(SHARED / folder), "--out",
                             str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    stats = subprocess.run([str(NEWSDESK), "stats", str(out), "--json"], capture_output=True,
                           text=True, timeout=300)
    assert stats.returncode == 0, stats.stderr
    return json.loads(result.stdout), json.loads(stats.stdout)


def test_mind_sample(tmp_path):
    report, stats = _import("mind", "mind-sample", tmp_path / "mind")
    assert report["rows"]["impressions"] == 5_000
    assert report["rows"]["articles"] == 2_000
    assert report["rows"]["interactions"] == 7_542  # clicks, per the sample's README
    assert report["bad_rows"] == 0
    # README: only 838 of the 22,592 referenced news ids are in news.tsv
    assert report["referenced_article_ids"] == 22_592
    assert report["missing_article_ids"] == 22_592 - 838
    assert stats["missing_articles"] == report["missing_article_ids"]
    assert stats["users"] == 4_637 and stats["shown_items"] == 189_359
    assert stats["first_event"].startswith("2019-11-09")
    assert stats["last_event"].startswith("2019-11-14")


def test_ebnerd_sample(tmp_path):
    report, stats = _import("ebnerd", "ebnerd-sample", tmp_path / "eb")
    assert report["rows"]["impressions"] == 1_046
    assert report["rows"]["histories"] == 44
    assert report["rows"]["articles"] == 0 and report["notes"]["articles_file"] == "absent"
    assert stats["clicks"] == 1_047 and stats["users"] == 38
    assert stats["catalog_coverage"] == 0.0


def test_movielens_sample(tmp_path):
    report, stats = _import("movielens", "movielens-100k", tmp_path / "ml")
    assert report["rows"]["interactions"] == 100_000
    assert report["rows"]["articles"] == 1_682
    assert report["missing_article_ids"] == 0
    assert stats["users"] == 943 and stats["clicks"] == 100_000
    assert stats["ctr"] is None  # no impressions: no click-through rate
    assert stats["catalog_shown_share"] is None
