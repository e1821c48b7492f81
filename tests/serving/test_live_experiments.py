"""Interleaving and bandit experiments served through the real app (real event log, real
stores): per-request team-draft slates with teams logged, clicks credited from the exposure
log in the report; a Thompson-sampling split learnt from the event stream with its assignment
propensity logged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from newsdesk.data.eventlog import open_event_log
from newsdesk.data.schema import Article, Impression
from newsdesk.serving.app import create_app
from tests.serving.conftest import ADMIN_KEY, PATIENT, make_settings, running
from tests.serving.ladder_world import (
    MODELS,
    article_categories,
    category_factory,
    click_events,
    show,
)

pytestmark = pytest.mark.anyio
AUTH = {"X-API-Key": ADMIN_KEY, "X-Actor": "tester"}
INTERLEAVE = """
id: il
type: interleaving
layer: ranking
surfaces: [front_page]
variants:
  - {name: good, bundle: good}
  - {name: fair, bundle: fair}
"""
BANDIT = """
id: bandit
type: bandit
layer: ranking
surfaces: [front_page]
variants:
  - {name: good, bundle: good}
  - {name: broken, bundle: broken}
"""


async def _loop(client, n: int, cats: dict[str, str], seed: int) -> list[dict]:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    bodies = []
    for i in range(n):
        user = f"u{i}"
        body = (await client.post("/v1/recommendations", json={
            "user_id": user, "k": 6, "surface": "front_page"})).json()
        bodies.append(body)
        clicks = show(client, body, user, rng, cats)
        if clicks:
            r = await client.post("/v1/events", json={"events": click_events(body, user, clicks)})
            assert r.status_code in (200, 202), r.text
        if i % 50 == 0:
            await asyncio.sleep(0.02)  # the exposure logger and the bandit thread run
    return bodies


def _logged(tmp_path: Path) -> dict[str, Impression]:
    log = open_event_log(f"sqlite:///{tmp_path}/events.db")
    try:
        return {e.request_id: e for _, e in log.read() if isinstance(e, Impression)}
    finally:
        log.close()


async def test_interleaving_served_credited_and_reported(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    app = create_app(make_settings(tmp_path, dataset_dir, bundle_version="good", **PATIENT),
                     recommender_factory=category_factory(articles))
    cats = article_categories(articles)
    async with running(app) as client:
        r = await client.post("/v1/admin/experiments", content=INTERLEAVE,
                              headers={**AUTH, "content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        bodies = await _loop(client, 400, cats, seed=5)
        report = await client.get("/v1/experiments/il/report", headers=AUTH)
        assert report.status_code == 200, report.text
        rep = report.json()
    assert all(b["variant"] == "interleaved" and b["model_version"] == "good|fair"
               for b in bodies)
    logged = _logged(tmp_path)
    firsts = []
    for b in bodies:
        row = logged[b["request_id"]]
        assert row.variant == "interleaved" and row.experiment == "il"
        assert row.article_ids == [it["article_id"] for it in b["items"]]
        # each position comes from its team's ranker: good serves news, fair serves sports
        for aid, team in zip(row.article_ids, row.teams or [], strict=True):
            assert cats[aid] == MODELS["good" if team == 0 else "fair"][0]
        assert abs(sum(1 for t in row.teams or [] if t == 0) - 3) <= 1  # a fair draft
        firsts.append(row.teams[0] if row.teams else -1)
    assert 0.35 < np.mean(firsts) < 0.65  # the coin of each request decides who picks first
    assert rep["type"] == "interleaving" and rep["impressions"] == 400
    assert rep["wins_a"] + rep["wins_b"] + rep["ties"] == 400
    # news is clicked 1.5x as often as sports: the good ranker wins the preference
    assert rep["verdict"] == "good preferred" and rep["p_value"] < 0.05
    lo, hi = rep["preference_share_a_ci95"]
    assert 0.5 < lo < rep["preference_share_a"] < hi < 1.0


async def test_bandit_learns_from_the_event_stream_and_logs_propensities(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    app = create_app(make_settings(tmp_path, dataset_dir, bundle_version="good",
                                   bandit_update_s=0.05, **PATIENT),
                     recommender_factory=category_factory(articles))
    cats = article_categories(articles)
    async with running(app) as client:
        r = await client.post("/v1/admin/experiments", content=BANDIT,
                              headers={**AUTH, "content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        bodies = await _loop(client, 600, cats, seed=6)
        rep = (await client.get("/v1/experiments/bandit/report", headers=AUTH)).json()
        alloc = app.state.services.live.bandits.allocation("bandit")
        # the kill switch beats the bandit: everyone gets the control (first) variant
        killed = await client.post("/v1/admin/experiments/bandit/kill", headers=AUTH)
        assert killed.status_code == 200 and killed.json()["control"] == "good"
        for i in range(30):
            body = (await client.post("/v1/recommendations", json={
                "user_id": f"k{i}", "k": 6, "surface": "front_page"})).json()
            assert body["variant"] == "good" and body["model_version"] == "good"
    assert alloc is not None and abs(alloc.probabilities.sum() - 1.0) < 1e-9
    variants = [b["variant"] for b in bodies]
    assert set(variants) == {"good", "broken"}
    last = variants[-150:]
    # explored at the start (prior: a coin); how long depends on how soon the allocator's
    # first updates land (every 50 ms): 2 of the first 100 in one full-suite run
    assert variants[:100].count("broken") >= 1
    assert last.count("good") / len(last) > 0.9  # then learnt which arm clicks
    logged = _logged(tmp_path)
    props = [logged[b["request_id"]].assignment_propensity for b in bodies]
    assert all(p is not None and 0.0 < p <= 1.0 for p in props)
    # the propensity is the probability the allocation gave the served arm: the broken arm's
    # late slates were drawn with a small one
    late_broken = [p for b, p in zip(bodies[-150:], props[-150:], strict=True)
                   if b["variant"] == "broken"]
    assert all(p < 0.2 for p in late_broken)
    arms = rep["arms"]
    assert rep["best_arm"] == "good" and rep["best_arm_share_last_quarter"] > 0.9
    assert arms["good"]["slates"] + arms["broken"]["slates"] == 600
    # IPS rates: P(any click in a slate of 6) is 1 - 0.7^6 = 0.88 for news and 0.06 for tech
    assert arms["good"]["ips_rate_ci95"][0] < 0.88 < arms["good"]["ips_rate_ci95"][1]
    # the broken arm's few late slates carry large IPS weights (1 / small propensity), so its
    # estimate is noisy; it covers the truth and sits below the good arm's whole interval
    assert arms["broken"]["ips_rate_ci95"][0] < 0.06
    assert arms["broken"]["ips_rate"] < arms["good"]["ips_rate_ci95"][0]
