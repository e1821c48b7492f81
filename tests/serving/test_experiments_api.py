"""Experiments in the serving app: assignment, variant bundles, kill switch, exposure log,
admin API and the on-demand report — through the real app, real stores, real event log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from newsdesk.data.schema import Article
from newsdesk.serving.app import create_app
from tests.serving.conftest import ADMIN_KEY, ctr_factory, make_settings, running

pytestmark = pytest.mark.anyio
AUTH = {"X-API-Key": ADMIN_KEY, "X-Actor": "tester"}
AB_YAML = """
id: ranker-ab
layer: ranking
surfaces: [front_page]
variants:
  - {name: control, weight: 1, bundle: v1}
  - {name: treatment, weight: 1, bundle: v2}
"""


@pytest.fixture
def app(tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> FastAPI:
    return create_app(make_settings(tmp_path, dataset_dir, bundle_version="v1"),
                      recommender_factory=ctr_factory(articles))


async def _create(client, body: str = AB_YAML, content_type: str = "application/yaml"):  # noqa: ANN001, ANN202
    return await client.post("/v1/admin/experiments", content=body,
                             headers={**AUTH, "content-type": content_type})


async def _ask(client, user: str, surface: str = "front_page") -> dict:  # noqa: ANN001
    r = await client.post("/v1/recommendations", json={"user_id": user, "k": 5,
                                                         "surface": surface})
    assert r.status_code == 200, r.text
    return r.json()


async def _drain(app: FastAPI) -> None:
    await asyncio.wait_for(app.state.services.exposure.queue.join(), 5)


async def test_sticky_split_variant_bundle_and_kill_switch(app: FastAPI) -> None:
    async with running(app) as client:
        created = await _create(client)
        assert created.status_code == 201, created.text
        assert created.json()["experiments"][0] == {"id": "ranker-ab", "version": 1,
                                                    "status": "running"}
        users = [f"u{i}" for i in range(300)]
        first = {u: await _ask(client, u) for u in users}
        # sticky: the same user keeps the same variant
        for u in users[:30]:
            assert (await _ask(client, u))["variant"] == first[u]["variant"]
        variants = [b["variant"] for b in first.values()]
        assert set(variants) == {"control", "treatment"}
        share = variants.count("treatment") / len(variants)
        assert 0.40 < share < 0.60  # 1:1 allocation; binomial sd 0.029 at n=300
        # each variant is served by its bundle
        for body in first.values():
            assert body["experiment"] == "ranker-ab"
            assert body["model_version"] == ("v2" if body["variant"] == "treatment" else "v1")
        # other surfaces are outside the experiment
        other = await _ask(client, "u1", surface="article_page")
        assert other["experiment"] is None and other["model_version"] == "v1"

        killed = await client.post("/v1/admin/experiments/ranker-ab/kill",
                                   params={"reason": "test"}, headers=AUTH)
        assert killed.status_code == 200 and killed.json()["control"] == "control"
        treated = [u for u in users if first[u]["variant"] == "treatment"][:40]
        for u in treated:  # the very next request of every treated user goes to control
            body = await _ask(client, u)
            assert body["variant"] == "control" and body["model_version"] == "v1"
        listing = (await client.get("/v1/admin/experiments", headers=AUTH)).json()
        (row,) = listing["experiments"]
        assert row["killed"] is True and row["rollout"]["status"] == "killed"


async def test_impressions_carry_experiment_variant_and_propensities(app: FastAPI) -> None:
    async with running(app) as client:
        assert (await _create(client)).status_code == 201
        served = {}
        for i in range(20):
            body = await _ask(client, f"u{i}")
            served[body["request_id"]] = body
        await _drain(app)
        log = app.state.services.event_log
        logged = {e.request_id: e for _, e in log.read() if hasattr(e, "article_ids")}
        assert set(served) <= set(logged)
        for rid, body in served.items():
            imp = logged[rid]
            assert imp.experiment == "ranker-ab" and imp.variant == body["variant"]
            assert imp.article_ids == [it["article_id"] for it in body["items"]]
            assert imp.propensities == [1.0] * len(imp.article_ids)


@pytest.mark.parametrize(("body", "content_type", "field"), [
    ("id: x\nvariants: [{name: a}, {name: b, weight: -1}]", "application/yaml",
     "experiments.0.variants.1.weight"),
    ('{"id": "x", "variants": [{"name": "a"}]}', "application/json", "experiments.0.variants"),
    ('{"id": "x", "trafic": 0.5, "variants": [{"name": "a"}, {"name": "b"}]}',
     "application/json", "experiments.0.trafic"),
    ("id: x\nvariants: [{name: a, pipeline: nope}, {name: b}]", "application/yaml",
     "experiments.0.variants.0.pipeline"),
    ("id: x\nvariants: [{name: a, bundle: missing}, {name: b}]", "application/yaml",
     "experiments.0.variants.0.bundle"),
    ("id: [unclosed", "application/yaml", "body"),
])
async def test_bad_config_is_422_naming_the_field(app: FastAPI, body: str, content_type: str,
                                                  field: str) -> None:
    async with running(app) as client:
        r = await _create(client, body, content_type)
        assert r.status_code == 422, r.text
        assert field in [f["field"] for f in r.json()["fields"]]
        assert field in r.json()["message"]
        listing = (await client.get("/v1/admin/experiments", headers=AUTH)).json()
        assert listing["experiments"] == []  # nothing stored


async def test_overlapping_experiment_in_a_layer_is_422(app: FastAPI) -> None:
    async with running(app) as client:
        assert (await _create(client)).status_code == 201
        other = AB_YAML.replace("id: ranker-ab", "id: ranker-other")
        r = await _create(client, other)
        assert r.status_code == 422 and "overlap" in r.json()["message"]


async def test_admin_routes_refuse_without_the_key(app: FastAPI) -> None:
    async with running(app) as client:
        calls = [("POST", "/v1/admin/experiments"), ("GET", "/v1/admin/experiments"),
                 ("POST", "/v1/admin/experiments/ranker-ab/kill"),
                 ("GET", "/v1/experiments/ranker-ab/report")]
        for method, url in calls:
            assert (await client.request(method, url, content=AB_YAML)).status_code == 401
            wrong = {"X-API-Key": "wrong-key-wrong-key-wrong"}
            assert (await client.request(method, url, content=AB_YAML,
                                         headers=wrong)).status_code == 403
        assert (await client.get("/v1/admin/experiments", headers=AUTH)).status_code == 200
        r = await client.post("/v1/admin/experiments/nope/kill", headers=AUTH)
        assert r.status_code == 404


async def test_report_has_per_variant_figures_after_simulated_traffic(app: FastAPI) -> None:
    rng = np.random.default_rng(3)
    async with running(app) as client:
        assert (await _create(client)).status_code == 201
        assert (await client.get("/v1/experiments/ranker-ab/report",
                                 headers=AUTH)).status_code == 409  # no traffic yet
        clicks = []
        for i in range(160):
            body = await _ask(client, f"u{i % 80}")
            p = 0.5 if body["variant"] == "treatment" else 0.2  # a known true effect
            for item in body["items"]:
                if rng.random() < p / len(body["items"]) * 2:
                    clicks.append({"type": "click", "event_id": f"c{len(clicks)}",
                                   "user_id": f"u{i % 80}", "article_id": item["article_id"],
                                   "request_id": body["request_id"]})
        assert (await client.post("/v1/events", json={"events": clicks})).status_code == 200
        r = await client.get("/v1/experiments/ranker-ab/report", headers=AUTH)
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["computed"] == "on demand"
        per = report["per_variant"]
        assert set(per) == {"control", "treatment"}
        assert per["control"]["users"] + per["treatment"]["users"] == 80
        assert per["control"]["shown"] > 0 and per["treatment"]["clicks"] > 0
        ctr = per["treatment"]["ctr"]
        assert ctr["ci_low"] <= ctr["value"] <= ctr["ci_high"]
        assert per["treatment"]["ctr"]["value"] > per["control"]["ctr"]["value"]
        assert report["srm"]["mismatch"] is False
        assert "treatment" in report["comparisons"]


async def test_experiments_and_kill_survive_a_restart(tmp_path: Path, dataset_dir: Path,
                                                      articles: list[Article]) -> None:
    def make() -> FastAPI:
        return create_app(make_settings(tmp_path, dataset_dir, bundle_version="v1"),
                          recommender_factory=ctr_factory(articles))

    users = [f"u{i}" for i in range(40)]
    async with running(make()) as client:
        assert (await _create(client)).status_code == 201
        before = {u: (await _ask(client, u))["variant"] for u in users}
    app = make()
    async with running(app) as client:  # a new process would see the same state dir
        assert app.state.services.registry.status()["pinned"] == ["v1", "v2"]
        after = {u: await _ask(client, u) for u in users}
        assert {u: b["variant"] for u, b in after.items()} == before
        assert all(b["model_version"] == "v2" for b in after.values()
                   if b["variant"] == "treatment")
        assert (await client.post("/v1/admin/experiments/ranker-ab/kill",
                                  headers=AUTH)).status_code == 200
    async with running(make()) as client:
        assert {(await _ask(client, u))["variant"] for u in users} == {"control"}


async def test_auto_rollback_by_another_process_applies_on_the_next_request(
        app: FastAPI, tmp_path: Path) -> None:
    from newsdesk.experiments.rollout import ArmStats, JsonFileRolloutStore, RolloutController

    staged = AB_YAML + ("rollout: {stages: [0.5, 1.0], min_requests_per_stage: 10,\n"
                        "          guardrails: {max_p99_latency_ms: 100}}\n")
    async with running(app) as client:
        assert (await _create(client, staged)).status_code == 201
        users = [f"u{i}" for i in range(200)]
        first = {u: (await _ask(client, u))["variant"] for u in users}
        share = list(first.values()).count("treatment") / len(users)
        assert 0.38 < share < 0.62  # stage 0: half of the experiment's units
        # a guardrail job in another process sees a p99 breach and rolls back
        job = RolloutController(JsonFileRolloutStore(tmp_path / "state" / "rollouts.json"))
        bad = ArmStats(requests=100, errors=0, p99_latency_ms=900.0, impressions=1000,
                       clicks=50)
        good = ArmStats(requests=100, errors=0, p99_latency_ms=20.0, impressions=1000, clicks=50)
        assert job.evaluate("ranker-ab", control=good, treatment=bad) == "rollback"
        treated = [u for u in users if first[u] == "treatment"]
        for u in treated:
            assert (await _ask(client, u))["variant"] == "control"
        row = (await client.get("/v1/admin/experiments", headers=AUTH)).json()["experiments"][0]
        assert row["rollout"]["status"] == "rolled_back" and row["killed"] is True


async def test_report_of_a_staged_rollout_expects_the_stage_allocation(app: FastAPI) -> None:
    staged = AB_YAML + "rollout: {stages: [0.2, 1.0]}\n"
    async with running(app) as client:
        assert (await _create(client, staged)).status_code == 201
        clicks = []
        for i in range(150):
            body = await _ask(client, f"u{i}")
            if i % 3 == 0:
                clicks.append({"type": "click", "event_id": f"c{i}", "user_id": f"u{i}",
                               "article_id": body["items"][0]["article_id"],
                               "request_id": body["request_id"]})
        assert (await client.post("/v1/events", json={"events": clicks})).status_code == 200
        report = (await client.get("/v1/experiments/ranker-ab/report", headers=AUTH)).json()
        counts, expected = report["srm"]["counts"], report["srm"]["expected"]
        assert expected[1] / sum(expected) == pytest.approx(0.2)  # [control, treatment]
        assert 0.1 < counts[1] / sum(counts) < 0.3 and report["srm"]["mismatch"] is False
        assert report["allocation_note"] is None
        await client.post("/v1/admin/experiments/ranker-ab/kill", headers=AUTH)
        report = (await client.get("/v1/experiments/ranker-ab/report", headers=AUTH)).json()
        assert "kill" in report["allocation_note"]
