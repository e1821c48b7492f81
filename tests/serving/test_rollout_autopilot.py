"""The rollout controller inside the service: a broken variant served through the real API is
rolled back by the service itself (no admin call), before 5% of traffic went to it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from newsdesk.coordination import LeaseKeeper, LocalLease
from newsdesk.data.eventlog import open_event_log
from newsdesk.data.schema import Article
from newsdesk.experiments.config import RolloutPlan
from newsdesk.experiments.rollout import InMemoryRolloutStore, RolloutController
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle
from newsdesk.serving.app import create_app
from newsdesk.serving.rollout_autopilot import RolloutAutopilot
from tests.serving.conftest import ADMIN_KEY, make_settings, running
from tests.serving.ladder_world import (
    MODELS,
    CategoryModel,
    article_categories,
    category_factory,
    click_events,
    show,
)

pytestmark = pytest.mark.anyio
AUTH = {"X-API-Key": ADMIN_KEY, "X-Actor": "tester"}
STAGED = """
id: broken-rollout
layer: ranking
surfaces: [front_page]
variants:
  - {name: control, bundle: good}
  - {name: treatment, bundle: broken}
rollout:
  stages: [0.02, 0.05, 0.25, 1.0]
  min_requests_per_stage: 100000
"""


async def test_broken_variant_is_rolled_back_by_the_service_itself(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    app = create_app(make_settings(tmp_path, dataset_dir, bundle_version="good",
                                   autopilot_interval_s=0.1, leader_lease_ttl_s=5.0),
                     recommender_factory=category_factory(articles))
    cats = article_categories(articles)
    rng = np.random.default_rng(3)
    served = {"control": 0, "treatment": 0}
    async with running(app) as client:
        r = await client.post("/v1/admin/experiments", content=STAGED,
                              headers={**AUTH, "content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        status = "running"
        for i in range(5_000):
            user = f"u{i}"
            body = (await client.post("/v1/recommendations", json={
                "user_id": user, "k": 5, "surface": "front_page"})).json()
            served[body["variant"]] += 1
            clicks = show(client, body, user, rng, cats)
            if clicks:
                ev = await client.post("/v1/events",
                                       json={"events": click_events(body, user, clicks)})
                assert ev.status_code in (200, 202), ev.text
            if i % 50 == 0:
                await asyncio.sleep(0.01)  # let the exposure logger run
                listing = (await client.get("/v1/admin/experiments", headers=AUTH)).json()
                status = listing["experiments"][0]["rollout"]["status"]
                if status != "running":
                    break
        assert status == "rolled_back"
        treatment_share = served["treatment"] / sum(served.values())
        assert served["treatment"] > 0 and treatment_share < 0.05, served
        # from now on everyone in the experiment gets control
        for i in range(50):
            body = (await client.post("/v1/recommendations", json={
                "user_id": f"u{i}", "k": 5, "surface": "front_page"})).json()
            assert body["variant"] == "control" and body["model_version"] == "good"
        metrics = (await client.get("/metrics")).text
        assert ('newsdesk_rollout_decisions_total{decision="rollback",'
                'experiment="broken-rollout"} 1.0') in metrics
        assert "newsdesk_rollout_leader 1.0" in metrics
    history = json.loads((tmp_path / "state" / "rollouts.json").read_text())[
        "broken-rollout"]["history"]
    rollback = [h for h in history if h["event"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["actor"].startswith("autopilot@")
    assert [g["name"] for g in rollback[0]["guardrails"]] == ["ctr"]
    assert all(h["actor"] == "tester" for h in history if h["event"] == "start")


def test_only_the_leader_decides_and_a_new_stage_starts_a_new_window(tmp_path: Path) -> None:
    """Two autopilots on one log and one rollout state: the follower never decides; after an
    advance the window restarts (old slates are not counted)."""
    log = open_event_log(f"sqlite:///{tmp_path}/events.db")
    rollouts = RolloutController(InMemoryRolloutStore())
    rollouts.start("exp", RolloutPlan(stages=[0.1, 0.5, 1.0], min_requests_per_stage=200))
    lead = RolloutAutopilot(rollouts, log, LeaseKeeper(LocalLease("ap-test", 5.0, "a")))
    follow = RolloutAutopilot(rollouts, log, LeaseKeeper(LocalLease("ap-test", 5.0, "b")))
    assert lead.keeper.tick() and not follow.keeper.tick()
    assert lead.step() == {"exp": "hold"} and follow.step() == {}

    def serve(n: int, start: int) -> None:
        rows = []
        for i in range(start, start + n):
            variant = "treatment" if i % 2 else "control"
            rows.append({"kind": "impression", "request_id": f"r{i}", "user_id": f"u{i}",
                         "timestamp": "2026-01-01T00:00:00Z", "article_ids": ["a", "b"],
                         "experiment": "exp", "variant": variant})
            rows.append({"kind": "interaction", "event_id": f"c{i}", "type": "click",
                         "user_id": f"u{i}", "article_id": "a", "request_id": f"r{i}",
                         "timestamp": "2026-01-01T00:00:01Z"})
        log.append(rows)

    serve(3000, 0)  # equal CTR (0.5) in both arms, 1500 slates each: shown to hold
    assert lead.step() == {"exp": "advance"} and rollouts.fraction("exp") == 0.5
    assert lead.tally is not None and lead.step() == {"exp": "hold"}
    assert lead.tally.counts.get("exp", {}) == {}  # the stage-1 slates are not stage 2's
    serve(100, 3000)
    lead.step()
    assert lead.tally.counts["exp"]["treatment"].requests == 50
    assert lead.tally.counts["exp"]["treatment"].clicks == 50
    assert follow.step() == {}
    log.close()


@pytest.mark.redis
def test_replicas_sharing_redis_elect_one_autopilot(tmp_path: Path, redis_server: str) -> None:
    """start_autopilot leases in the online store's Redis: of two services, one leads; when
    it stops, the other takes over."""
    import time
    from types import SimpleNamespace

    from newsdesk.coordination import RedisLease
    from newsdesk.experiments.registry import InMemoryExperimentRegistry
    from newsdesk.monitoring.metrics import ServingMetrics
    from newsdesk.serving.rollout_autopilot import start_autopilot
    from newsdesk.serving.variants import ExperimentAssigner

    log = open_event_log(f"sqlite:///{tmp_path}/events.db")
    pilots = []
    for i in range(2):
        settings = make_settings(tmp_path / f"r{i}", None, online_store_url=redis_server,
                                 autopilot_interval_s=0.05, leader_lease_ttl_s=0.6)
        assigner = ExperimentAssigner(InMemoryExperimentRegistry(),
                                      RolloutController(InMemoryRolloutStore()))
        svc = SimpleNamespace(settings=settings, assigner=assigner, event_log=log,
                              metrics=ServingMetrics())
        pilots.append(start_autopilot(svc))  # type: ignore[arg-type]
    try:
        assert all(isinstance(p.keeper.lease, RedisLease) for p in pilots)
        deadline = time.monotonic() + 5
        while not any(p.keeper.is_leader() for p in pilots) and time.monotonic() < deadline:
            time.sleep(0.02)
        leaders = [p for p in pilots if p.keeper.is_leader()]
        assert len(leaders) == 1
        other = next(p for p in pilots if p is not leaders[0])
        leaders[0].stop()  # releases the lease
        deadline = time.monotonic() + 3
        while not other.keeper.is_leader() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert other.keeper.is_leader()
    finally:
        for p in pilots:
            p.stop()
        log.close()


# -- guardrails beyond the click metric: error rate and p99 latency ----------------------------
class _FailingModel(CategoryModel):
    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        raise RuntimeError("model bug")  # the pipeline falls back: a degraded answer


class _SlowModel(CategoryModel):
    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        time.sleep(0.1)  # well inside the stage timeout: served, but slow
        return super().recommend(ctx)


def _guarded_factory(articles: list[Article]) -> Any:
    """'failing' raises, 'slow' sleeps 100 ms; both would serve the good model's slate, so only
    the guardrail under test can tell them from control."""
    def make(version: str | None, store: Any) -> Recommender:
        cls = {"failing": _FailingModel, "slow": _SlowModel}.get(version or "", CategoryModel)
        return cls(version or "good", MODELS["good"], articles)

    return make


def _staged(exp_id: str, treatment: str, stages: str = "[0.02, 0.05, 0.25, 1.0]") -> str:
    return f"""
id: {exp_id}
layer: ranking
surfaces: [front_page]
variants:
  - {{name: control, bundle: good}}
  - {{name: treatment, bundle: {treatment}}}
rollout:
  stages: {stages}
  min_requests_per_stage: 100000
  guardrails: {{max_p99_latency_increase_ms: 30}}
"""


async def _drive(client: Any, n: int, articles: list[Article]) -> tuple[dict[str, int], str]:
    """Serve up to n readers (clicks from the ladder world) until the rollout stops."""
    cats = article_categories(articles)
    rng = np.random.default_rng(5)
    served = {"control": 0, "treatment": 0}
    status = "running"
    for i in range(n):
        body = (await client.post("/v1/recommendations", json={
            "user_id": f"u{i}", "k": 5, "surface": "front_page"})).json()
        served[body["variant"]] += 1
        clicks = show(client, body, f"u{i}", rng, cats)
        if clicks:
            await client.post("/v1/events", json={"events": click_events(body, f"u{i}", clicks)})
        if i % 50 == 0:
            await asyncio.sleep(0.01)  # let the exposure logger run
            listing = (await client.get("/v1/admin/experiments", headers=AUTH)).json()
            status = listing["experiments"][0]["rollout"]["status"]
            if status != "running":
                break
    return served, status


def _app(tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> Any:
    # a generous stage timeout: the slow variant must be served (slow), not time out (degraded)
    return create_app(make_settings(tmp_path, dataset_dir, bundle_version="good",
                                    autopilot_interval_s=0.1, leader_lease_ttl_s=5.0,
                                    budget_ms=2000, personalised_timeout_ms=1500),
                      recommender_factory=_guarded_factory(articles))


@pytest.mark.parametrize(("bundle", "guardrail"), [("failing", "error_rate"),
                                                   ("slow", "p99_latency_ms")])
async def test_a_failing_or_slow_variant_is_rolled_back_before_5pct_of_traffic(
        tmp_path: Path, dataset_dir: Path, articles: list[Article], bundle: str,
        guardrail: str) -> None:
    app = _app(tmp_path, dataset_dir, articles)
    async with running(app) as client:
        r = await client.post("/v1/admin/experiments", content=_staged("guarded", bundle),
                              headers={**AUTH, "content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        served, status = await _drive(client, 4000, articles)
        assert status == "rolled_back", served
        assert served["treatment"] > 0 and served["treatment"] / sum(served.values()) < 0.05
        row = (await client.get("/v1/admin/experiments", headers=AUTH)).json()["experiments"][0]
        assert row["killed"] is True and row["rollout"]["reason"].startswith(f"{guardrail} broken")
        metrics = (await client.get("/metrics")).text
        # at least once (a loaded machine can let a second tick see the breach before the
        # kill switch lands)
        found = re.search(r'newsdesk_rollout_guardrail_breaches_total\{experiment="guarded",'
                          f'guardrail="{guardrail}"' r'\} ([0-9.]+)', metrics)
        assert found is not None and float(found.group(1)) >= 1.0
        for i in range(20):  # the kill switch: everyone gets control
            body = (await client.post("/v1/recommendations", json={
                "user_id": f"u{i}", "k": 5, "surface": "front_page"})).json()
            assert body["variant"] == "control" and not body["degraded"]
    history = json.loads((tmp_path / "state" / "rollouts.json").read_text())["guarded"]["history"]
    rollback = [h for h in history if h["event"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["actor"].startswith("autopilot@")
    # only the guardrail that is broken: the slate itself is the good model's (same CTR)
    assert [g["name"] for g in rollback[0]["guardrails"]] == [guardrail]


async def test_a_healthy_variant_is_not_rolled_back(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    app = _app(tmp_path, dataset_dir, articles)
    async with running(app) as client:
        r = await client.post("/v1/admin/experiments",
                              content=_staged("guarded", "good2", "[0.2, 1.0]"),
                              headers={**AUTH, "content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        served, status = await _drive(client, 1200, articles)
        await asyncio.sleep(0.3)  # a few more autopilot ticks on all of it
        assert status == "running" and served["treatment"] > 150, served
        pilot_metrics = (await client.get("/metrics")).text
        assert 'newsdesk_rollout_decisions_total{decision="hold",experiment="guarded"}' in (
            pilot_metrics)
        assert "newsdesk_rollout_guardrail_breaches_total{" not in pilot_metrics
        row = (await client.get("/v1/admin/experiments", headers=AUTH)).json()["experiments"][0]
        assert row["rollout"]["status"] == "running" and row["rollout"]["reason"] is None
    history = json.loads((tmp_path / "state" / "rollouts.json").read_text())["guarded"]["history"]
    assert "rollback" not in {h["event"] for h in history}
    holds = [h for h in history if h["event"] == "hold"]
    # it waits only for traffic, every guardrail evaluated on real evidence
    assert holds and holds[-1]["treatment_requests"] > 100


def test_server_errors_of_the_route_count_against_the_variant(tmp_path: Path) -> None:
    """A 5xx leaves no slate in the log: the route's per-variant count (VariantErrors) is added
    to the arm's requests and errors, from the window's start on."""
    from newsdesk.serving.variant_errors import VariantErrors

    log = open_event_log(f"sqlite:///{tmp_path}/events.db")
    rollouts = RolloutController(InMemoryRolloutStore())
    rollouts.start("exp", RolloutPlan(stages=[0.1, 1.0], min_requests_per_stage=10_000))
    errors = VariantErrors()
    errors.record("exp", "treatment")  # before the window: not counted
    pilot = RolloutAutopilot(rollouts, log, LeaseKeeper(LocalLease("ap-5xx", 5.0, "a")),
                             server_errors=errors)
    assert pilot.keeper.tick() and pilot.step() == {"exp": "hold"}
    log.append([{"kind": "impression", "request_id": f"r{i}", "user_id": f"u{i}",
                 "timestamp": "2026-01-01T00:00:00Z", "article_ids": ["a"],
                 "experiment": "other;exp", "variant": "x;" + ("treatment" if i % 10 == 0
                                                               else "control"),
                 "latency_ms": 5.0, "degraded": False} for i in range(1000)])
    assert pilot.step() == {"exp": "hold"}  # 100 healthy treatment slates
    for _ in range(3):  # 3 of 103: not yet significant at alpha 0.001
        errors.record("other;exp", "x;treatment")
    assert pilot.step() == {"exp": "hold"}
    for _ in range(7):
        errors.record("other;exp", "x;treatment")
    assert pilot.step() == {"exp": "rollback"}
    last = rollouts.state("exp").history[-1]
    assert [g["name"] for g in last["guardrails"]] == ["error_rate"]
    assert "(10/110)" in last["guardrails"][0]["detail"]
    log.close()


def test_guardrail_settings_name_the_field() -> None:
    import yaml

    from newsdesk.errors import ConfigError
    from newsdesk.experiments.config import parse_suite

    bad = _staged("guarded", "slow").replace("increase_ms: 30", "increase_ms: -5")
    with pytest.raises(ConfigError, match="max_p99_latency_increase_ms") as exc:
        parse_suite(yaml.safe_load(bad))
    assert "-5" in str(exc.value) or "greater than or equal" in str(exc.value)


class _CrashingModel(CategoryModel):
    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        # answers in time, but with a score the route cannot render: the request fails (500)
        return [ScoredArticle(it.article_id, "n/a", "", "")  # type: ignore[arg-type]
                for it in super().recommend(ctx)]


async def test_a_variant_failing_with_5xx_is_rolled_back_through_the_api(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    def make(version: str | None, store: Any) -> Recommender:
        cls = _CrashingModel if version == "crashing" else CategoryModel
        return cls(version or "good", MODELS["good"], articles)

    app = create_app(make_settings(tmp_path, dataset_dir, bundle_version="good",
                                   autopilot_interval_s=0.1, leader_lease_ttl_s=5.0),
                     recommender_factory=make)
    codes: dict[int, int] = {}
    async with running(app, raise_app_exceptions=False) as client:
        r = await client.post("/v1/admin/experiments", content=_staged("guarded", "crashing"),
                              headers={**AUTH, "content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        status = "running"
        for i in range(3000):
            code = (await client.post("/v1/recommendations", json={
                "user_id": f"u{i}", "k": 5, "surface": "front_page"})).status_code
            codes[code] = codes.get(code, 0) + 1
            if i % 50 == 0:
                await asyncio.sleep(0.01)
                row = (await client.get("/v1/admin/experiments", headers=AUTH)).json()[
                    "experiments"][0]
                status = row["rollout"]["status"]
                if status != "running":
                    break
        assert status == "rolled_back", codes
        assert 0 < codes.get(500, 0) < 0.05 * sum(codes.values()), codes
        assert row["rollout"]["reason"].startswith("error_rate broken")
        metrics = (await client.get("/metrics")).text
        assert ('newsdesk_variant_server_errors_total{experiment="guarded",'
                f'variant="treatment"}} {float(codes[500])}') in metrics
