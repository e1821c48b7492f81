"""The LLM re-ranking stage in the service: applied on its surface, the ranker's order on
timeout or with the switch off, never on other surfaces."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsdesk.features.training_log import LogArrays
from newsdesk.llm.fake import FakeProvider
from newsdesk.llm.service import LLMService
from newsdesk.llm.settings import load_llm_settings
from newsdesk.serving.app import create_app
from tests.serving.conftest import ADMIN_KEY, PATIENT, make_settings, running, settled

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(tmp_path: Path, world: tuple[Path, Path], log: LogArrays, provider: FakeProvider):
    dataset, bundle = world
    end = datetime.fromtimestamp(log.time_range[1] + 60, UTC)

    def llm_factory(serve_settings, registry):  # noqa: ANN001, ANN202
        return LLMService(load_llm_settings(), state_dir=serve_settings.resolved_state_dir,
                          registry=registry, backend=provider)

    return create_app(make_settings(tmp_path, dataset, bundles_dir=bundle.parent,
                                    clock_start=end, online_store_url=None, **PATIENT),
                      llm_factory=llm_factory)


def ids(resp: dict) -> list[str]:
    return [it["article_id"] for it in resp["items"]]


async def test_stage_reorders_its_surface_and_keeps_order_when_off(
        tmp_path: Path, llm_world: tuple[Path, Path], llm_log: LogArrays, frozen_clock: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_LLM_RERANK_SURFACES", "newsletter")
    monkeypatch.setenv("NEWSDESK_LLM_RERANK_BUDGET_MS", "3000")
    fake = FakeProvider(json.dumps({"order": [2, 1, 3, 5, 4]}))
    app = make_app(tmp_path, llm_world, llm_log, fake)
    user = llm_log.events.user_ids[int(llm_log.events.click_user[0])]
    body = {"user_id": user, "k": 8, "surface": "newsletter"}
    async with running(app) as client:
        await settled(client)
        front = (await client.post("/v1/recommendations",
                                   json={**body, "surface": "front_page"})).json()
        assert "llm_rerank" not in front and fake.calls == 0
        off = await client.put("/v1/admin/llm/switch", headers={"X-API-Key": ADMIN_KEY},
                               json={"enabled": False})
        assert off.status_code == 200
        plain = (await client.post("/v1/recommendations", json=body)).json()
        assert plain["llm_rerank"] == {"applied": False, "reason": "disabled"}
        await client.put("/v1/admin/llm/switch", headers={"X-API-Key": ADMIN_KEY},
                         json={"enabled": True})
        new = (await client.post("/v1/recommendations", json=body)).json()
        assert new["llm_rerank"] == {"applied": True, "reason": "ok"} and fake.calls == 1
        a = ids(plain)
        # the re-ranked head; the tail may move: `plain` was logged as impressions in between
        assert ids(new)[:5] == [a[1], a[0], a[2], a[4], a[3]]
        metrics = (await client.get("/metrics")).text
        assert 'newsdesk_llm_rerank_total{reason="ok"} 1.0' in metrics


async def test_stage_timeout_keeps_the_ranker_order(
        tmp_path: Path, llm_world: tuple[Path, Path], llm_log: LogArrays,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_LLM_RERANK_SURFACES", "newsletter")
    monkeypatch.setenv("NEWSDESK_LLM_RERANK_BUDGET_MS", "200")
    slow = FakeProvider(json.dumps({"order": [2, 1, 3, 5, 4]}), delay_s=3.0)
    app = make_app(tmp_path, llm_world, llm_log, slow)
    user = llm_log.events.user_ids[int(llm_log.events.click_user[0])]
    async with running(app) as client:
        await settled(client)
        base = (await client.post("/v1/recommendations", json={
            "user_id": user, "k": 8, "surface": "front_page"})).json()
        began = time.perf_counter()
        resp = (await client.post("/v1/recommendations", json={
            "user_id": user, "k": 8, "surface": "newsletter"})).json()
        assert time.perf_counter() - began < 1.5
        assert resp["llm_rerank"] == {"applied": False, "reason": "timeout"}
        assert ids(resp) == ids(base)
