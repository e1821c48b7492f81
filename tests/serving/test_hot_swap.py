"""Hot swap under concurrent traffic: zero failed requests, every answer from a loaded model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from newsdesk.data.schema import Article
from newsdesk.serving.app import create_app
from tests.serving.conftest import ADMIN_KEY, PATIENT, ctr_factory, make_settings, running

pytestmark = pytest.mark.anyio


async def test_swaps_under_concurrent_requests_drop_nothing(
        tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> None:
    # room for every worker's model call: shedding (tested elsewhere) must not blur this test
    app = create_app(make_settings(tmp_path, dataset_dir, max_inflight_model_calls=64, **PATIENT),
                     recommender_factory=ctr_factory(articles))
    async with running(app) as client:
        statuses: list[int] = []
        versions: list[str] = []
        stop = asyncio.Event()

        async def traffic(worker: int) -> None:
            i = 0
            while not stop.is_set():
                r = await client.post("/v1/recommendations",
                                      json={"user_id": f"u{worker}-{i}", "k": 10})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    body = r.json()
                    assert len(body["items"]) == 10 and body["degraded"] is False
                    versions.append(body["model_version"])
                i += 1

        async def swapper() -> list[str]:
            h = {"X-API-Key": ADMIN_KEY}
            actives = []
            for n in range(6):
                r = await client.post(f"/v1/admin/bundles/v{n + 2}/promote", headers=h)
                assert r.status_code == 200, r.text
                actives.append(r.json()["active"])
                await asyncio.sleep(0.02)
                r = await client.post("/v1/admin/rollback", headers=h)
                assert r.status_code == 200, r.text
                actives.append(r.json()["active"])
                await asyncio.sleep(0.02)
            stop.set()
            return actives

        workers = [asyncio.create_task(traffic(w)) for w in range(8)]
        actives = await swapper()
        await asyncio.gather(*workers)
        assert len(statuses) > 50
        assert set(statuses) == {200}
        assert set(versions) <= {"v1", *(f"v{n + 2}" for n in range(6))}
        assert len(set(versions)) >= 2  # traffic really spanned swaps
        assert actives == [x for n in range(6) for x in (f"v{n + 2}", "v1")]
        metrics = (await client.get("/metrics")).text
        assert 'newsdesk_model_swaps_total{action="promote"} 7.0' in metrics  # start + 6
