"""Fixtures of the serving tests: a small real catalog, real stores, the real app in-process.

The app runs with its lifespan (started and stopped around each test) behind httpx's ASGI
transport. The model is a real `Recommender`: `StreamingCTRRecommender` (smoothed CTR from the
online store) seeded with the fixture's catalog, under two version names for hot-swap tests.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from newsdesk.data.dataset import DatasetWriter
from newsdesk.data.schema import Article
from newsdesk.features.online_store import OnlineStore
from newsdesk.models.base import Recommender
from newsdesk.models.baselines import StreamingCTRRecommender
from newsdesk.serving.app import create_app
from newsdesk.serving.settings import ServeSettings

ADMIN_KEY = "test-admin-key-0123456789"
CATEGORIES = ("news", "sports", "finance", "tech")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_articles(n: int = 40, now: datetime | None = None) -> list[Article]:
    now = now or datetime.now(UTC)
    return [
        Article(article_id=f"a{i:03d}", title=f"Story number {i} about {CATEGORIES[i % 4]}",
                abstract=f"Abstract {i}", category=CATEGORIES[i % 4],
                published_at=now - timedelta(minutes=10 * (i + 1)))
        for i in range(n)
    ]


@pytest.fixture
def articles() -> list[Article]:
    return make_articles()


@pytest.fixture
def dataset_dir(tmp_path: Path, articles: list[Article]) -> Path:
    out = tmp_path / "dataset"
    with DatasetWriter(out, source="test") as writer:
        writer.table("articles").write_rows(a.model_dump() for a in articles)
    return out


def ctr_factory(articles: list[Article]) -> Callable[[str | None, OnlineStore], Recommender]:
    """Builds a real (baseline) recommender per version; 'missing' fails like a bad bundle."""

    def make(version: str | None, store: OnlineStore) -> Recommender:
        if version == "missing":
            from newsdesk.errors import BundleError

            raise BundleError("bundle 'missing' not found")
        model = StreamingCTRRecommender(store)
        model.version = version or "v1"
        model.upsert_articles(articles)
        return model

    return make


# Budgets for tests that compare slates across requests on a real bundle: a loaded CI machine
# can exceed the production 120 ms stage timeout, and a trending fallback would change the slate.
PATIENT: dict[str, float] = {"budget_ms": 8000.0, "personalised_timeout_ms": 6000.0,
                             "trending_timeout_ms": 2000.0}


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service clock stands still at `clock_start`: slates compared across requests then
    cannot differ because articles aged (and near-ties flipped) between the requests."""
    import newsdesk.serving.app as app_module
    monkeypatch.setattr(app_module, "make_clock",
                        lambda settings: (lambda: settings.clock_start.timestamp()))


def make_settings(tmp_path: Path, dataset_dir: Path | None, **overrides: Any) -> ServeSettings:
    values: dict[str, Any] = {
        "dataset_dir": dataset_dir, "bundles_dir": tmp_path / "bundles",
        "state_dir": tmp_path / "state", "admin_api_key": ADMIN_KEY,
        "online_store_url": "memory://", "event_log_url": f"sqlite:///{tmp_path}/events.db",
        "log_level": "warning",
    }
    values.update(overrides)
    return ServeSettings(**values)


@asynccontextmanager
async def running(app: FastAPI, *, raise_app_exceptions: bool = True
                  ) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan started, and a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def app(tmp_path: Path, dataset_dir: Path, articles: list[Article]) -> FastAPI:
    # patient deadlines: these tests check answers, not latency (a loaded CI machine took
    # 148 ms for a first request against the 120 ms default and served the fallback)
    return create_app(make_settings(tmp_path, dataset_dir, **PATIENT),
                      recommender_factory=ctr_factory(articles))


async def settled(client: httpx.AsyncClient, timeout_s: float = 60.0) -> None:
    """Until /readyz says "ready": the online store's background load from the dataset is
    done, so article statistics (trending, features) stop moving under the test."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while (await client.get("/readyz")).json().get("status") != "ready":
        assert time.monotonic() < deadline, "the service did not settle"
        await asyncio.sleep(0.05)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()
