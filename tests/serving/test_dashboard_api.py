"""The dashboard's JSON views and GET /v1/users/{id}/recent, in-process (no browser).

The browser end to end lives in test_dashboard_browser.py; these pin the server side the pages
rely on, fast, with the real app, real stores and a real baseline recommender.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from newsdesk.monitoring.metrics import LATENCY_BUCKETS, ServingMetrics
from newsdesk.serving.dashboard.metrics_summary import bucket_quantile, summarize
from newsdesk.serving.dashboard.routes import flatten_metrics
from tests.serving.conftest import ADMIN_KEY, running

pytestmark = pytest.mark.anyio


def test_bucket_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (float("inf"), 40.0)]
    assert bucket_quantile(0.25, buckets) == pytest.approx(0.1)  # rank 10: top of bucket 1
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.15)  # rank 20: half of bucket 2
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.2)  # in +Inf: highest finite bound
    assert bucket_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    with pytest.raises(ValueError, match="q must be in"):
        bucket_quantile(1.5, buckets)


def test_summary_quantiles_bracket_the_true_ones() -> None:
    metrics = ServingMetrics()
    rng = np.random.default_rng(0)
    values = rng.lognormal(np.log(0.01), 0.6, 2000)
    for v in values:
        metrics.stage_latency.labels("personalised").observe(float(v))
    row = summarize(metrics.registry)["stages"][0]
    assert row["stage"] == "personalised" and row["count"] == 2000
    assert row["mean_s"] == pytest.approx(values.mean())
    bounds = (0.0, *LATENCY_BUCKETS)
    for q in (0.5, 0.95, 0.99):
        true = float(np.quantile(values, q))
        # the estimate lies in the bucket that holds the true quantile
        i = next(i for i, b in enumerate(LATENCY_BUCKETS) if true <= b)
        assert bounds[i] <= row[f"p{round(q * 100)}_s"] <= LATENCY_BUCKETS[i]


def test_flatten_metrics_keeps_numbers_one_level_deep_without_importances() -> None:
    flat = flatten_metrics({"valid": {"auc": 0.7, "note": "x"}, "best_iteration": 9,
                            "feature_importance": {"age": 1.0}, "ok": True})
    assert flat == {"valid.auc": 0.7, "best_iteration": 9.0}


async def test_overview_counts_requests_and_ctr(app: FastAPI) -> None:
    async with running(app) as client:
        for i in range(3):
            r = await client.post("/v1/recommendations", json={"user_id": f"u{i}", "k": 4})
            assert r.status_code == 200
        body = (await client.get("/dashboard/api/overview")).json()
    rec = next(e for e in body["endpoints"] if e["endpoint"] == "/v1/recommendations")
    assert rec["requests"] == 3 and rec["by_status"] == {"200": 3.0}
    assert rec["p50_s"] is not None and rec["p50_s"] <= rec["p99_s"]
    assert body["ctr"] == [{"surface": "front_page", "variant": "production", "shown": 12.0,
                            "clicks": 0.0, "ctr": 0.0}]
    assert body["model"] == "v1" and body["catalog_size"] == 40


async def test_recent_clicks_newest_first_with_catalog_fields(app: FastAPI) -> None:
    now = datetime.now(UTC)
    events = [{"type": "click", "event_id": f"c{i}", "user_id": "reader", "article_id": aid,
               "timestamp": (now - timedelta(minutes=10 - i)).isoformat()}
              for i, aid in enumerate(["a001", "a002", "a003"])]
    async with running(app) as client:
        assert (await client.post("/v1/events", json={"events": events})).status_code == 200
        closed = await client.get("/v1/users/reader/recent")  # personal data: admin only
        wrong = await client.get("/v1/users/reader/recent",
                                 headers={"X-API-Key": "not-the-admin-key-000"})
        client.headers["X-API-Key"] = ADMIN_KEY
        body = (await client.get("/v1/users/reader/recent", params={"limit": 2})).json()
        unknown = (await client.get("/v1/users/nobody/recent")).json()
        bad = await client.get("/v1/users/reader/recent", params={"limit": 0})
    assert closed.status_code == 401 and "clicks" not in closed.json()
    assert wrong.status_code == 403
    assert [c["article_id"] for c in body["clicks"]] == ["a003", "a002"]
    assert body["clicks"][0]["category"] == "tech" and body["clicks"][0]["live"] is True
    assert unknown["clicks"] == []
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "limit"


async def test_preview_returns_k_items_with_reasons_and_logs_nothing(app: FastAPI) -> None:
    async with running(app) as client:
        body = (await client.get("/dashboard/api/preview/u1", params={"k": 6})).json()
        overview = (await client.get("/dashboard/api/overview")).json()
        services = app.state.services
        await services.exposure.queue.join()
        logged = services.event_log.count()
    assert len(body["items"]) == 6 and all(it["reason"] for it in body["items"])
    assert body["logged"] is False and body["model_version"] == "v1"
    assert overview["ctr"] == []  # no slate counted as shown
    assert logged == 0  # no impression in the event log


async def test_views_are_open_and_actions_still_need_the_key(app: FastAPI) -> None:
    async with running(app) as client:
        models = await client.get("/dashboard/api/models")
        experiments = await client.get("/dashboard/api/experiments")
        promote = await client.post("/v1/admin/bundles/v2/promote")
        promoted = await client.post("/v1/admin/bundles/v2/promote",
                                     headers={"X-API-Key": ADMIN_KEY})
        after = (await client.get("/dashboard/api/models")).json()
    assert models.status_code == 200 and models.json()["active"] == "v1"
    assert experiments.status_code == 200 and experiments.json()["experiments"] == []
    assert promote.status_code == 401 and promoted.status_code == 200
    assert (after["active"], after["previous"]) == ("v2", "v1")


async def test_monitoring_view_passes_the_live_monitor_through(app: FastAPI) -> None:
    async with running(app) as client:
        await client.post("/v1/recommendations", json={"user_id": "u1", "k": 4})
        live = (await client.get("/v1/monitoring")).json()
        view = (await client.get("/dashboard/api/monitoring")).json()
    assert view["available"] is True and view["reason"] is None
    assert view["data"]["psi"]["model_version"] == live["psi"]["model_version"] == "v1"
    assert view["data"]["quality"][0]["shown"] == live["quality"][0]["shown"] == 4


async def test_pages_and_assets(app: FastAPI) -> None:
    async with running(app) as client:
        pages = [await client.get(p) for p in ("/dashboard", "/dashboard/models",
                                                "/dashboard/preview")]
        js = await client.get("/dashboard/static/dashboard.js")
        missing_page = await client.get("/dashboard/nope")
        traversal = await client.get("/dashboard/static/..%2Froutes.py")
    assert all(p.status_code == 200 and "dashboard.js" in p.text for p in pages)
    assert ADMIN_KEY not in "".join(p.text for p in pages)  # the key is never served
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert missing_page.status_code == 404 and traversal.status_code == 404


async def test_open_report_is_computed_once_per_ttl_and_unknown_ids_are_not_cached(
        app: FastAPI) -> None:
    config = {"id": "exp-cache", "layer": "ranking", "surfaces": ["front_page"],
              "owner": "tests", "primary_metric": "ctr",
              "variants": [{"name": "control", "weight": 1, "bundle": "v1"},
                           {"name": "treatment", "weight": 1, "pipeline": "trending"}]}
    async with running(app) as client:
        created = await client.post("/v1/admin/experiments", json=config,
                                    headers={"X-API-Key": ADMIN_KEY})
        assert created.status_code == 201, created.text
        for i in range(20):
            await client.post("/v1/recommendations", json={"user_id": f"u{i}", "k": 3})
        first = await client.get("/dashboard/api/experiments/exp-cache/report")
        second = await client.get("/dashboard/api/experiments/exp-cache/report")
        missing = [await client.get("/dashboard/api/experiments/nope/report")
                   for _ in range(2)]
    assert first.status_code == 200 and set(first.json()["per_variant"]) == {
        "control", "treatment"}
    # the second answer is the first computation (its request id), not a new export
    assert second.json()["request_id"] == first.json()["request_id"]
    assert [m.status_code for m in missing] == [404, 404]
    assert missing[0].json()["request_id"] != missing[1].json()["request_id"]


async def test_monitoring_view_says_why_when_the_endpoint_is_absent_or_failing() -> None:
    """A server without /v1/monitoring (an older build) or with a failing one: the dashboard
    router alone, in a bare app."""
    from fastapi import HTTPException

    from newsdesk.serving import dashboard

    bare = FastAPI()
    bare.include_router(dashboard.router)
    failing = FastAPI()
    failing.include_router(dashboard.router)

    @failing.get("/v1/monitoring")
    async def monitoring() -> dict[str, object]:
        raise HTTPException(503, "monitoring is warming up")

    answers = []
    for app in (bare, failing):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers.append((await client.get("/dashboard/api/monitoring")).json())
    assert answers[0] == {"available": False, "reason": "/v1/monitoring answered 404"}
    assert answers[1]["available"] is False
    assert answers[1]["reason"] == "/v1/monitoring answered 503"
