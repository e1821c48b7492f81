"""Every endpoint of the API against the real app (lifespan, stores, event log, model)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from tests.serving.conftest import ADMIN_KEY, running, wait_until

pytestmark = pytest.mark.anyio


def svc(app: FastAPI):  # noqa: ANN201 - test helper
    return app.state.services


async def test_health_ready_metrics_openapi(app: FastAPI) -> None:
    async with running(app) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"model": True, "online_store": True, "event_log": True}
        assert ready.json()["model_version"] == "v1"
        await client.post("/v1/recommendations", json={"user_id": "u1", "k": 5})
        text = (await client.get("/metrics")).text
        assert 'newsdesk_http_requests_total{endpoint="/v1/recommendations"' in text
        assert 'newsdesk_model_info{version="v1"} 1.0' in text
        assert "newsdesk_pipeline_stage_duration_seconds_bucket" in text
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert {"/v1/recommendations", "/v1/events", "/v1/articles",
                "/v1/articles/{article_id}/related", "/v1/admin/rollback"} <= set(paths)


async def test_recommendations_return_k_items_and_log_exposure(app: FastAPI) -> None:
    async with running(app) as client:
        r = await client.post("/v1/recommendations", json={
            "user_id": "u1", "surface": "front_page", "k": 7,
            "context": {"device": "mobile", "locale": "en-GB"}})
        assert r.status_code == 200
        body = r.json()
        assert len(body["items"]) == 7
        assert len({it["article_id"] for it in body["items"]}) == 7
        assert body["model_version"] == "v1" and body["variant"] is None
        assert body["degraded"] is False
        assert all(it["reason"] for it in body["items"])
        assert [it["rank"] for it in body["items"]] == list(range(1, 8))
        assert r.headers["x-request-id"] == body["request_id"]
        log = svc(app).event_log
        assert await wait_until(lambda: log.count() == 1)
        (_, impression), = list(log.read())
        assert impression.request_id == body["request_id"]
        assert impression.article_ids == [it["article_id"] for it in body["items"]]


async def test_anonymous_session_filters_and_exclude(app: FastAPI) -> None:
    async with running(app) as client:
        r = await client.post("/v1/recommendations", json={
            "session_id": "s-9", "k": 5,
            "filters": {"category": ["sports"], "exclude": ["a001"]}})
        items = r.json()["items"]
        assert len(items) == 5
        ids = {it["article_id"] for it in items}
        assert "a001" not in ids
        cats = {svc(app).catalog.get(i).category for i in ids}
        assert cats == {"sports"}


@pytest.mark.parametrize(("payload", "field"), [
    ({"user_id": "u1", "k": 0}, "k"),
    ({"user_id": "u1", "k": 101}, "k"),
    ({"user_id": "u1", "kk": 3}, "kk"),
    ({"k": 3}, "body"),
    ({"user_id": "", "k": 3}, "user_id"),
    ({"user_id": "u1", "surface": "front page!"}, "surface"),
    ({"user_id": "u1", "filters": {"category": "sports"}}, "filters.category"),
])
async def test_recommendations_bad_input_names_the_field(app: FastAPI, payload: dict,
                                                         field: str) -> None:
    async with running(app) as client:
        r = await client.post("/v1/recommendations", json=payload)
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "invalid_request" and body["request_id"]
        assert any(f["field"] == field for f in body["fields"]), body
        assert svc(app).event_log.count() == 0  # nothing served, nothing logged


async def test_events_are_durable_idempotent_and_applied(app: FastAPI) -> None:
    async with running(app) as client:
        ts = datetime.now(UTC).isoformat()
        batch = {"events": [
            {"type": "impression", "request_id": "r1", "user_id": "u7", "timestamp": ts,
             "article_ids": ["a000", "a001"]},
            {"type": "click", "event_id": "e1", "user_id": "u7", "article_id": "a001",
             "request_id": "r1", "timestamp": ts},
            {"type": "dwell", "event_id": "e2", "user_id": "u7", "article_id": "a001",
             "dwell_seconds": 42.5},
        ]}
        r = await client.post("/v1/events", json=batch)
        assert r.status_code == 200
        assert r.json() | {"request_id": None} == {
            "request_id": None, "accepted": 3, "duplicates": 0, "applied": True}
        assert svc(app).event_log.count() == 3  # durable before the answer
        store = svc(app).store
        assert [c.article_id for c in store.user_clicks("u7")] == ["a001"]
        r2 = await client.post("/v1/events", json=batch)
        assert (r2.json()["accepted"], r2.json()["duplicates"]) == (0, 3)
        assert len(store.user_clicks("u7")) == 1  # a retried batch is not applied twice
        stats = store.article_stats(["a001"], datetime.now(UTC).timestamp())[0]
        assert (stats.clicks, stats.impressions) == (1, 1)


@pytest.mark.parametrize(("event", "field"), [
    ({"type": "dwell", "event_id": "e", "user_id": "u", "article_id": "a000"},
     "events.0.dwell.dwell_seconds"),
    ({"type": "click", "user_id": "u", "article_id": "a000"}, "events.0.click.event_id"),
    ({"type": "purchase", "event_id": "e", "user_id": "u", "article_id": "a"}, "events.0"),
    ({"type": "impression", "request_id": "r", "user_id": "u", "article_ids": []},
     "events.0.impression.article_ids"),
])
async def test_bad_events_store_nothing(app: FastAPI, event: dict, field: str) -> None:
    async with running(app) as client:
        good = {"type": "click", "event_id": "ok", "user_id": "u", "article_id": "a000"}
        r = await client.post("/v1/events", json={"events": [event, good]})
        assert r.status_code == 422
        assert any(f["field"].startswith(field) for f in r.json()["fields"]), r.json()
        assert svc(app).event_log.count() == 0
        assert svc(app).store.user_clicks("u") == []


async def test_size_limits_give_413(tmp_path, dataset_dir, articles) -> None:  # noqa: ANN001
    from newsdesk.serving.app import create_app
    from tests.serving.conftest import ctr_factory, make_settings

    app = create_app(make_settings(tmp_path, dataset_dir, max_body_bytes=4096,
                                   max_events_per_batch=2),
                     recommender_factory=ctr_factory(articles))
    async with running(app) as client:
        big = {"user_id": "u", "filters": {"exclude": [f"x{i:05d}" for i in range(900)]}}
        r = await client.post("/v1/recommendations", json=big)
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        events = [{"type": "click", "event_id": f"e{i}", "user_id": "u", "article_id": "a000"}
                  for i in range(3)]
        r = await client.post("/v1/events", json={"events": events})
        assert r.status_code == 413 and "events" in r.json()["message"]
        assert app.state.services.event_log.count() == 0


async def test_click_changes_next_recommendation(app: FastAPI) -> None:
    async with running(app) as client:
        first = await client.post("/v1/recommendations", json={"user_id": "u1", "k": 5})
        before = [it["article_id"] for it in first.json()["items"]]
        target = "a030"
        assert target not in before
        now = datetime.now(UTC).isoformat()
        events = [{"type": "click", "event_id": f"c{i}", "user_id": f"u{i}",
                   "article_id": target, "timestamp": now} for i in range(5)]
        assert (await client.post("/v1/events", json={"events": events})).status_code == 200
        second = await client.post("/v1/recommendations", json={"user_id": "u1", "k": 5})
        after = [it["article_id"] for it in second.json()["items"]]
        assert after[0] == target  # read-your-writes: the clicks count on the next request


async def test_put_article_is_recommendable_and_delete_removes_it(app: FastAPI) -> None:
    async with running(app) as client:
        new = {"article_id": "fresh-1", "title": "Breaking science story",
               "category": "science", "published_at": datetime.now(UTC).isoformat()}
        r = await client.put("/v1/articles", json={"articles": [new]})
        assert r.status_code == 200 and r.json()["upserted"] == 1
        rec = await client.post("/v1/recommendations", json={
            "user_id": "u2", "k": 3, "filters": {"category": ["science"]}})
        assert [it["article_id"] for it in rec.json()["items"]] == ["fresh-1"]
        assert rec.json()["items"][0]["source"] != "editorial"  # the model itself has it
        top = (await client.post("/v1/recommendations", json={"user_id": "u2", "k": 40}))
        gone = top.json()["items"][0]["article_id"]
        assert (await client.delete(f"/v1/articles/{gone}")).status_code == 200
        again = await client.post("/v1/recommendations", json={"user_id": "u2", "k": 40})
        assert gone not in {it["article_id"] for it in again.json()["items"]}
        assert (await client.delete(f"/v1/articles/{gone}")).status_code == 404
        related = await client.get(f"/v1/articles/{gone}/related")
        assert related.status_code == 404


async def test_bad_article_batches_name_the_field(app: FastAPI) -> None:
    async with running(app) as client:
        bad = {"articles": [{"article_id": "x1", "title": "t",
                             "published_at": "2024-01-02T00:00:00Z",
                             "expires_at": "2024-01-01T00:00:00Z"},
                            {"article_id": "x2", "title": ""}]}
        r = await client.put("/v1/articles", json=bad)
        assert r.status_code == 422
        fields = {f["field"] for f in r.json()["fields"]}
        assert "articles.1.title" in fields and "articles.1.published_at" in fields
        assert "x1" not in svc(app).catalog


async def test_related_articles(app: FastAPI) -> None:
    async with running(app) as client:
        r = await client.get("/v1/articles/a004/related", params={"k": 4})
        assert r.status_code == 200
        items = r.json()["items"]
        assert len(items) == 4 and "a004" not in {it["article_id"] for it in items}
        assert {svc(app).catalog.get(it["article_id"]).category for it in items} == {"news"}
        assert (await client.get("/v1/articles/a004/related", params={"k": 0})).status_code == 422


async def test_admin_requires_key_and_swaps_models(app: FastAPI) -> None:
    async with running(app) as client:
        assert (await client.get("/v1/admin/bundles")).status_code == 401
        wrong = await client.get("/v1/admin/bundles", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 403
        h = {"X-API-Key": ADMIN_KEY}
        assert (await client.get("/v1/admin/bundles", headers=h)).json()["active"] == "v1"
        r = await client.post("/v1/admin/bundles/v2/promote", headers=h)
        assert r.json()["previous"] == "v1" and r.json()["active"] == "v2"
        rec = await client.post("/v1/recommendations", json={"user_id": "u", "k": 3})
        assert rec.json()["model_version"] == "v2"
        r = await client.post("/v1/admin/rollback", headers=h)
        assert r.json()["active"] == "v1"
        assert (await client.post("/v1/admin/bundles/missing/load", headers=h)).status_code == 409
        st = (await client.get("/v1/admin/bundles", headers=h)).json()
        assert (st["active"], st["previous"]) == ("v1", "v2")


async def test_admin_disabled_without_key(tmp_path, dataset_dir, articles) -> None:  # noqa: ANN001
    from newsdesk.serving.app import create_app
    from tests.serving.conftest import ctr_factory, make_settings

    app = create_app(make_settings(tmp_path, dataset_dir, admin_api_key=None),
                     recommender_factory=ctr_factory(articles))
    async with running(app) as client:
        r = await client.post("/v1/admin/rollback", headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 403 and "disabled" in r.json()["message"]
