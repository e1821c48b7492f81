"""`newsdesk import ...` as a real subprocess: exit codes, one-line errors, JSON report, stats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.data.test_importers_mind import BEHAVIORS, NEWS, write_mind

NEWSDESK = Path(sys.executable).parent / "newsdesk"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NEWSDESK), *args], capture_output=True, text=True, timeout=120)


def test_import_then_stats(tmp_path):
    src = write_mind(tmp_path / "m", BEHAVIORS, NEWS)
    out = tmp_path / "ds"
    result = _run("import", "mind", str(src), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "impressions" in result.stdout and "missing articles 5" in result.stdout

    result = _run("import", "mind", str(src), "--out", str(out), "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["rows"]["impressions"] == 4 and report["missing_article_ids"] == 5

    stats = json.loads(_run("stats", str(out), "--json").stdout)
    assert stats["impressions"] == 4 and stats["clicks"] == 3
    assert stats["missing_articles"] == 5  # agrees with the import report


def test_bad_input_is_one_line_error(tmp_path):
    bad = [*BEHAVIORS, "9\tU9\tyesterday\t\tN1-0"]
    src = write_mind(tmp_path / "m", bad, NEWS)
    result = _run("import", "mind", str(src), "--out", str(tmp_path / "ds"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "behaviors.tsv:5: field 'time'" in result.stderr
    assert not (tmp_path / "ds" / "manifest.json").exists()

    result = _run("import", "mind", str(src), "--out", str(tmp_path / "ds"), "--skip-invalid",
                  "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["bad_by_field"] == {"behaviors.tsv:time": 1}


def test_missing_folder_and_files(tmp_path):
    result = _run("import", "mind", str(tmp_path / "nope"), "--out", str(tmp_path / "ds"))
    assert result.returncode == 1 and "does not exist" in result.stderr
    (tmp_path / "empty").mkdir()
    result = _run("import", "ebnerd", str(tmp_path / "empty"), "--out", str(tmp_path / "ds"))
    assert result.returncode == 1 and "behaviors.parquet" in result.stderr
    assert "Traceback" not in result.stderr
