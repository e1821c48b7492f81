"""The LLM layer inside the serving app: the admin switch and enrichment on upsert.

The provider is the scripted fake (injected through `create_app(llm=...)`): what is under test
is that the upsert never waits for the model, that the switch reaches the queue, and that only
validated enrichment is stored. The real model is exercised end to end in test_local_server.py.
"""

from __future__ import annotations

import json
import threading

import pytest

from newsdesk.llm.enrich_queue import EnrichQueue
from newsdesk.llm.enrichment_store import EnrichmentStore
from newsdesk.llm.fake import FakeProvider
from newsdesk.llm.service import LLMService
from newsdesk.llm.settings import load_llm_settings
from newsdesk.serving.app import create_app
from tests.serving.conftest import ADMIN_KEY, ctr_factory, make_articles, make_settings, running

pytestmark = pytest.mark.anyio
H = {"X-API-Key": ADMIN_KEY}


def enrichment_json(messages) -> str:
    first_user = next(m for m in messages if m["role"] == "user")
    title = first_user["content"].splitlines()[0].removeprefix("Title: ")
    if "broken" in title:
        return '{"summary": "cut off'
    return json.dumps({"summary": f"An article: {title}.", "topics": ["news"],
                       "keywords": [title.split()[-1]], "entities": [],
                       "timeliness": "breaking", "brand_safety": "safe"})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(tmp_path, provider, **llm_settings):
    from newsdesk.data.dataset import DatasetWriter

    articles = make_articles(4)
    dataset = tmp_path / "dataset"
    with DatasetWriter(dataset, source="test") as writer:
        writer.table("articles").write_rows(a.model_dump() for a in articles)
    settings = make_settings(tmp_path, dataset)
    made = {}

    def llm_factory(serve_settings, registry):
        service = LLMService(load_llm_settings(enrich_on_upsert=True, **llm_settings),
                             state_dir=serve_settings.resolved_state_dir, registry=registry,
                             backend=provider)
        made["queue"] = EnrichQueue.attach(service, serve_settings.resolved_state_dir)
        made["service"] = service
        return service

    app = create_app(settings, recommender_factory=ctr_factory(articles), llm_factory=llm_factory)
    return app, made


def article(i: int, title: str) -> dict:
    return {"article_id": f"n{i}", "title": title, "abstract": "Text.", "category": "news",
            "published_at": "2026-01-01T00:00:00Z"}


async def test_upsert_returns_before_the_model_and_stores_only_valid_enrichment(tmp_path):
    release = threading.Event()

    def slow(messages):
        release.wait(10)
        return enrichment_json(messages)

    app, made = make_app(tmp_path, FakeProvider(slow))
    async with running(app) as client:
        service, queue = made["service"], made["queue"]
        r = await client.put("/v1/articles", json={"articles": [
            article(1, "Budget vote in Hamburg"), article(2, "A broken answer")]})
        assert r.status_code == 200  # while the model is still blocked
        assert queue.status()["enriched"] == 0
        release.set()
        assert queue.wait_idle(10)
        frame = EnrichmentStore(tmp_path / "state").read()
        assert frame["article_id"].to_list() == ["n1"]  # the invalid one was dropped whole
        assert frame["keywords"].to_list() == [["Hamburg"]]
        assert frame["prompt_version"].to_list() == ["enrich.v2"]  # the newest prompt
        assert queue.dropped == {"invalid_output": 1}
        metrics = (await client.get("/metrics")).text
        assert 'newsdesk_llm_enrich_dropped_total{reason="invalid_output"} 1.0' in metrics
        assert "newsdesk_llm_enriched_total 1.0" in metrics
        # the same article again: same content, prompt and model -> no second model call
        calls = service.provider().inner.calls
        await client.put("/v1/articles", json={"articles": [article(1, "Budget vote in Hamburg")]})
        assert queue.wait_idle(10) and service.provider().inner.calls == calls


async def test_full_queue_drops_with_a_metric(tmp_path):
    release = threading.Event()
    app, made = make_app(
        tmp_path, FakeProvider(lambda m: (release.wait(10), enrichment_json(m))[1]),
        enrich_queue_size=1)
    async with running(app) as client:
        queue = made["queue"]
        r = await client.put("/v1/articles", json={"articles": [
            article(i, f"Story {i}") for i in range(5)]})
        assert r.status_code == 200
        # one in work, one queued, the rest dropped (timing: the worker may not have taken one)
        assert queue.dropped.get("queue_full", 0) >= 3
        release.set()
        assert queue.wait_idle(10)


async def test_admin_switch_turns_llm_off_without_restart(tmp_path):
    fake = FakeProvider(enrichment_json)
    app, made = make_app(tmp_path, fake)
    async with running(app) as client:
        queue = made["queue"]
        no_key = await client.put("/v1/admin/llm/switch", json={"enabled": False})
        assert no_key.status_code == 401
        r = await client.put("/v1/admin/llm/switch", json={"enabled": False}, headers=H)
        assert r.status_code == 200 and r.json()["enabled"] is False
        await client.put("/v1/articles", json={"articles": [article(1, "Off story")]})
        assert queue.wait_idle(5) and fake.calls == 0
        assert queue.dropped == {"disabled": 1}
        status = (await client.get("/v1/admin/llm", headers=H)).json()
        assert status["enabled"] is False and status["runtime_flag"] is False
        assert "newsdesk_llm_enabled 0.0" in (await client.get("/metrics")).text
        # another worker process reading the same state dir sees the flip
        other = LLMService(load_llm_settings(), state_dir=tmp_path / "state")
        assert other.enabled is False
        other.close()
        r = await client.put("/v1/admin/llm/switch", json={"enabled": True}, headers=H)
        assert r.json()["enabled"] is True
        await client.put("/v1/articles", json={"articles": [article(2, "On story")]})
        assert queue.wait_idle(5) and fake.calls == 1


@pytest.mark.parametrize("nice", [None, 7])
async def test_enrichment_runs_at_the_configured_nice(tmp_path, nice):
    """The worker thread yields the CPU to the request path: the model is called from a thread
    at nice 10 by default (or the setting's value)."""
    import os

    seen: list[int] = []

    def record(messages):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return enrichment_json(messages)

    extra = {} if nice is None else {"enrich_nice": nice}
    app, made = make_app(tmp_path, FakeProvider(record), **extra)
    async with running(app) as client:
        r = await client.put("/v1/articles", json={"articles": [article(1, "Budget vote")]})
        assert r.status_code == 200
        assert made["queue"].wait_idle(10)
    assert seen == [10 if nice is None else 7]


async def test_enrichment_waits_while_the_recommend_path_is_busy(tmp_path):
    """The worker asks the serving process's load signal before each article: while the
    recommend path spends more than `enrich_yield_above` seconds per second in its stages the
    article waits (a gauge says so); once the path is quiet it is enriched."""
    import time

    app, made = make_app(tmp_path, FakeProvider(enrichment_json), enrich_yield_above=0.25)
    async with running(app) as client:
        pipeline, queue = app.state.services.pipeline, made["queue"]
        busy = threading.Event()
        busy.set()

        def load() -> None:  # the path's stage seconds grow at 0.5 s per second
            while busy.is_set():
                pipeline.stage_seconds += 0.05
                time.sleep(0.1)

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        r = await client.put("/v1/articles", json={"articles": [article(1, "Budget vote")]})
        assert r.status_code == 200
        assert not queue.wait_idle(2.5)  # held back while the path is busy
        assert queue.status()["enriched"] == 0
        metrics = (await client.get("/metrics")).text
        assert "newsdesk_llm_enrich_waiting_for_serving 1.0" in metrics
        busy.clear()
        worker.join()
        assert queue.wait_idle(10)
        assert queue.status()["enriched"] == 1 and queue.status()["waited_for_serving_s"] >= 2
        metrics = (await client.get("/metrics")).text
        assert "newsdesk_llm_enrich_waiting_for_serving 0.0" in metrics
