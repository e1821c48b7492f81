"""deploy/prometheus/rules.yml: valid for promtool, and its alerts unit-tested.

The alert unit tests (rules_test.yml, rules_ctr_test.yml) show every alert firing on broken
input and silent on healthy input. promtool comes from Debian's `prometheus` package, which
.ci/run installs; locally the tests skip when it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; CI does)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=PROM_DIR, capture_output=True, text=True,
                          timeout=240)


@needs_promtool
def test_rules_are_valid() -> None:
    out = _promtool("check", "rules", "rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_prometheus_config_loads_the_rules() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rules.yml" in out.stdout  # the rule file is found and checked with the config


@needs_promtool
@pytest.mark.parametrize("tests", ["rules_test.yml", "rules_ctr_test.yml"])
def test_alert_unit_tests_pass(tests: str) -> None:
    out = _promtool("test", "rules", tests)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    rules = yaml.safe_load((PROM_DIR / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    fired = set()
    for name in ("rules_test.yml", "rules_ctr_test.yml"):
        doc = yaml.safe_load((PROM_DIR / name).read_text())
        for test in doc["tests"]:
            fired |= {t["alertname"] for t in test.get("alert_rule_test", [])
                      if t.get("exp_alerts")}
    assert alerts == fired
    assert {"NewsdeskHighP99Latency", "NewsdeskHighErrorRatio", "NewsdeskHighDegradedRatio",
            "NewsdeskEventLagHigh", "NewsdeskScoreDrift", "NewsdeskCTRDrop",
            "NewsdeskNotReady"} <= alerts
