"""Headline tests through the API: variants served with propensities, clicks credited,
LLM proposals validated, promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsdesk.llm.fake import FakeProvider
from newsdesk.llm.service import LLMService
from newsdesk.llm.settings import load_llm_settings
from newsdesk.serving.app import create_app
from tests.serving.conftest import ADMIN_KEY, ctr_factory, make_articles, make_settings, running

pytestmark = pytest.mark.anyio
ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(tmp_path: Path, provider: FakeProvider):  # noqa: ANN201
    from newsdesk.data.dataset import DatasetWriter

    articles = make_articles(6)
    dataset = tmp_path / "dataset"
    with DatasetWriter(dataset, source="test") as writer:
        writer.table("articles").write_rows(a.model_dump() for a in articles)

    def llm_factory(serve_settings, registry):  # noqa: ANN001, ANN202
        return LLMService(load_llm_settings(), state_dir=serve_settings.resolved_state_dir,
                          registry=registry, backend=provider)

    return create_app(make_settings(tmp_path, dataset), recommender_factory=ctr_factory(articles),
                      llm_factory=llm_factory)


async def test_headline_test_serves_variants_credits_clicks_and_promotes(tmp_path: Path) -> None:
    proposals = {"headlines": ["Story number 0 about news, told differently",
                               "Story number 0: the Kremlin reacts",  # invented name
                               "Story number 7 about news"]}  # invented number
    fake = FakeProvider(json.dumps(proposals))
    app = make_app(tmp_path, fake)
    async with running(app) as client:
        title = "Story number 0 about news"
        started = await client.post("/v1/admin/headlines/a000", headers=ADMIN,
                                    json={"title": title, "abstract": "Abstract 0",
                                          "min_impressions": 10})
        assert started.status_code == 200, started.text
        body = started.json()
        assert [v["headline"] for v in body["variants"]] == [
            title, "Story number 0 about news, told differently"]
        assert sorted(r["reason"] for r in body["rejected"]) == ["new_entity", "new_entity"]
        assert body["prompt"] == "headlines.v1" and fake.calls == 1
        metrics = (await client.get("/metrics")).text
        assert 'newsdesk_llm_headline_rejected_total{reason="new_entity"} 2.0' in metrics

        seen: dict[str, int] = {}
        clicked = 0
        for i in range(40):
            rec = (await client.post("/v1/recommendations",
                                     json={"user_id": f"r{i}", "k": 6})).json()
            item = next(it for it in rec["items"] if it["article_id"] == "a000")
            assert 0 < item["headline_propensity"] <= 1
            assert item["headline"] in (title, proposals["headlines"][0])
            seen[item["headline_variant"]] = seen.get(item["headline_variant"], 0) + 1
            others = [it for it in rec["items"] if it["article_id"] != "a000"]
            assert all("headline" not in it for it in others)
            if item["headline_variant"] == "v1" and clicked < 5:
                clicked += 1
                await client.post("/v1/events", json={"events": [
                    {"type": "click", "event_id": f"c{i}", "user_id": f"r{i}",
                     "article_id": "a000", "request_id": rec["request_id"]}]})
        assert set(seen) == {"v0", "v1"}
        report = (await client.get("/v1/admin/headlines/a000", headers=ADMIN)).json()
        rows = {v["variant"]: v for v in report["variants"]}
        assert rows["v1"]["clicks"] == clicked > 0 and rows["v0"]["clicks"] == 0
        assert sum(v["impressions"] for v in rows.values()) == 40
        assert rows["v1"]["ci95"][0] <= rows["v1"]["ctr"] <= rows["v1"]["ci95"][1]
        promoted = (await client.post("/v1/admin/headlines/a000/promote", headers=ADMIN)).json()
        assert promoted["winner"] == "v1"
        rec = (await client.post("/v1/recommendations", json={"user_id": "x", "k": 6})).json()
        item = next(it for it in rec["items"] if it["article_id"] == "a000")
        assert item["headline_variant"] == "v1" and item["headline_propensity"] == 1.0
        assert (await client.delete("/v1/admin/headlines/a000", headers=ADMIN)).json()["stopped"]
        rec = (await client.post("/v1/recommendations", json={"user_id": "x", "k": 6})).json()
        assert all("headline" not in it for it in rec["items"])
        assert (await client.get("/v1/admin/headlines/a000", headers=ADMIN)).status_code == 404


async def test_headline_test_refuses_without_valid_variants_or_llm(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeProvider(json.dumps({"headlines": ["Zelensky visits"]})))
    async with running(app) as client:
        bad = await client.post("/v1/admin/headlines/a001", headers=ADMIN,
                                json={"title": "Story number 1 about sports"})
        assert bad.status_code == 422
        noauth = await client.post("/v1/admin/headlines/a001", json={"variants": ["x"]})
        assert noauth.status_code == 401
        off = await client.put("/v1/admin/llm/switch", headers=ADMIN, json={"enabled": False})
        assert off.status_code == 200
        refused = await client.post("/v1/admin/headlines/a001", headers=ADMIN,
                                    json={"title": "Story number 1 about sports"})
        assert refused.status_code == 409 and "variants" in refused.json()["message"]
        given = await client.post("/v1/admin/headlines/a001", headers=ADMIN, json={
            "title": "Story number 1 about sports", "variants": ["Sports story number 1 here"]})
        assert given.status_code == 200  # given variants need no LLM
