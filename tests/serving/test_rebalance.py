"""Connection: close on a share of responses, so keep-alive clients spread over workers."""

from __future__ import annotations

import random

import httpx
import pytest
from fastapi import FastAPI

from newsdesk.serving.rebalance import RebalanceConnections


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, int]:
        return {"ok": 1}

    return app


@pytest.mark.anyio
async def test_about_one_response_in_n_closes_the_connection() -> None:
    app = RebalanceConnections(_app(), mean_requests=10, rng=random.Random(1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        responses = [await client.get("/x") for _ in range(2000)]
    closes = sum(r.headers.get("connection") == "close" for r in responses)
    assert all(r.status_code == 200 and r.json() == {"ok": 1} for r in responses)
    assert 120 < closes < 280  # binomial(2000, 0.1): mean 200, sd ~13


@pytest.mark.anyio
async def test_every_response_closes_with_mean_one_and_refuses_zero() -> None:
    app = RebalanceConnections(_app(), mean_requests=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/x")
    assert r.headers.get_list("connection") == ["close"]
    with pytest.raises(ValueError, match="mean_requests"):
        RebalanceConnections(_app(), mean_requests=0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
