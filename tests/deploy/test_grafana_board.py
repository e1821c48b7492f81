"""deploy/grafana/newsdesk.json queries only metrics the service exports.

The real app runs in-process (the serving tests' fixtures), serves a few slates, takes events
(an attributed click, an unknown-article click, a rejected batch), gets a drift window (a
baseline model has no bundle reference, so one is attached from a synthetic reference) and
refreshes its monitor; then /metrics is scraped and every metric name in every panel's PromQL
must be exported (a sample, or a declared family: a labelled counter has no sample
before its first increment), recording rules (`a:b:c` names) resolved through
deploy/prometheus/rules.yml. `up` is Prometheus' own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi import FastAPI

from newsdesk.monitoring.drift import DriftWindow, Reference
from tests.serving.conftest import (  # noqa: F401 - fixtures, found by name
    anyio_backend,
    app,
    articles,
    dataset_dir,
    running,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BOARD = DEPLOY / "grafana" / "newsdesk.json"
PROMETHEUS_OWN = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "offset", "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not functions, labels, keywords or durations)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range durations
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if m.group(0).lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", m.group(0)):
            continue
        names.add(m.group(0))
    return names


def test_metric_name_parser() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (le, instance) (rate('
                        'x_bucket{endpoint="/a",le=~"1|2"}[5m])))') == {"x_bucket"}
    assert metric_names("a:b:c < 0.7 * d and on (s) sum by (s) (rate(e_total[1h])) > 1") == {
        "a:b:c", "d", "e_total"}


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",), "info": ("_info",), "summary": ("_sum", "_count")}


def exported_names(text: str) -> set[str]:
    """Sample names of a /metrics text: those present, and those of every declared family
    (a labelled counter such as the 5xx count has no sample until its first increment)."""
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            names |= {family + suffix for suffix in SUFFIXES.get(kind.strip(), ("",))}
            if kind.strip() == "counter" and family.endswith("_total"):
                names.add(family)  # prometheus_client names an empty counter family so
    return names


def _panel_exprs(board: dict) -> list[tuple[str, str]]:
    out = []
    for panel in board["panels"]:
        for sub in [panel, *panel.get("panels", [])]:
            out += [(sub["title"], t["expr"]) for t in sub.get("targets", [])]
    return out


def _records() -> dict[str, str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    return {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"]
            if "record" in r}


@pytest.mark.anyio
async def test_board_queries_only_exported_metrics(app: FastAPI) -> None:  # noqa: F811
    board = json.loads(BOARD.read_text())
    assert board["uid"] and board["panels"]
    async with running(app) as client:
        ids = []
        for user in ("u1", "u2"):
            body = (await client.post("/v1/recommendations",
                                      json={"user_id": user, "k": 5})).json()
            ids.append((body["request_id"], body["items"][0]["article_id"]))
        events = [{"type": "click", "event_id": "c1", "user_id": "u1", "article_id": ids[0][1],
                   "request_id": ids[0][0]},
                  {"type": "click", "event_id": "c2", "user_id": "u2", "article_id": "gone"}]
        assert (await client.post("/v1/events", json={"events": events})).status_code == 200
        assert (await client.post("/v1/events", json={"events": [{}]})).status_code == 422
        rng = np.random.default_rng(0)
        x = rng.normal(size=(500, 2)).astype(np.float32)
        monitor = app.state.monitor
        window = DriftWindow(Reference.fit(x, x[:, 1], ("position", "f")), window=1000,
                             sample_every=1, threshold=0.2)
        window.add(x, x[:, 1])
        monitor.windows["v1"] = window
        monitor.refresh()
        text = (await client.get("/metrics")).text
    exported = exported_names(text)
    sampled = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
               if line and not line.startswith("#")}
    # what this exercise produced must be among the samples, not only declared
    assert {"newsdesk_psi", "newsdesk_event_lag_seconds", "newsdesk_position_clicks_total",
            "newsdesk_unknown_article_clicks_total", "newsdesk_events_rejected_total",
            "newsdesk_ready", "newsdesk_catalog_coverage_ratio",
            "newsdesk_http_request_duration_seconds_bucket"} <= sampled
    records = _records()
    missing = []
    for title, expr in _panel_exprs(board):
        todo, seen = list(metric_names(expr)), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in records:
                todo += metric_names(records[name])
            elif name not in exported and name not in PROMETHEUS_OWN:
                missing.append(f"panel {title!r}: {name}")
    assert not missing, missing
    # the rules query exported metrics too
    for record, expr in records.items():
        for name in metric_names(expr):
            assert name in exported or name in records, f"rule {record}: {name}"
