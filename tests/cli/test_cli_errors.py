"""The CLI contract: one-line errors and non-zero exit codes, tracebacks only with --debug."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.data.test_dataset import _write


def _newsdesk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsdesk.cli.main", *args],
        capture_output=True, text=True, timeout=120,
    )


def test_error_is_one_line_without_traceback(tmp_path):
    result = _newsdesk("stats", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "not a newsdesk dataset" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_traceback(tmp_path):
    result = _newsdesk("--debug", "stats", str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_stats_json(tmp_path):
    _write(tmp_path / "ds")
    result = _newsdesk("stats", str(tmp_path / "ds"), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["impressions"] == 1 and stats["articles"] == 5


def test_usage_error_exits_non_zero():
    result = _newsdesk("stats")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_usage_error_names_the_option_not_an_internal_error(tmp_path):
    result = _newsdesk("serve", "--bundles", str(tmp_path), "--workerz", "2")
    assert result.returncode == 2
    assert "No such option: --workerz" in result.stderr
    assert "internal error" not in result.stderr
