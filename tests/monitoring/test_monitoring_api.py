"""GET /v1/monitoring and the monitoring metrics, through the real app in-process.

The model is the serving tests' baseline (no bundle, hence no drift reference: psi.reference
is false and PSI stays null, as for a bundle written before references existed).
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from tests.serving.conftest import running

pytestmark = pytest.mark.anyio


async def test_quality_and_data_quality_figures(app: FastAPI) -> None:
    async with running(app) as client:
        slates = []
        for user in ("u1", "u2", "u3"):
            r = await client.post("/v1/recommendations", json={"user_id": user, "k": 5})
            assert r.status_code == 200
            slates.append(r.json())
        first = slates[0]
        clicked = first["items"][0]["article_id"]
        events = [
            {"type": "click", "event_id": "c1", "user_id": "u1", "article_id": clicked,
             "request_id": first["request_id"]},
            {"type": "click", "event_id": "c2", "user_id": "u2", "article_id": "no-such-article"},
        ]
        assert (await client.post("/v1/events", json={"events": events})).status_code == 200
        # the same click again (a retry) must not count twice
        assert (await client.post("/v1/events", json={"events": events[:1]})).status_code == 200
        bad = {"type": "click", "user_id": "u1", "article_id": clicked}  # no event_id
        assert (await client.post("/v1/events", json={"events": [bad]})).status_code == 422

        app.state.monitor.refresh()  # what the timer does
        r = await client.get("/v1/monitoring")
        assert r.status_code == 200
        body = r.json()

        assert body["psi"]["reference"] is False and body["psi"]["score"] is None
        assert body["psi"]["threshold"] == 0.2
        [row] = body["quality"]
        assert (row["surface"], row["variant"], row["model_version"]) == (
            "front_page", "production", "v1")
        assert row["responses"] == 3 and row["shown"] == 15 and row["clicks"] == 1
        assert row["ctr_at"]["1"] == pytest.approx(1 / 3, abs=1e-6)
        assert row["ctr_at"]["5"] == pytest.approx(1 / 15, abs=1e-6)
        assert row["ctr_by_position"][0] == pytest.approx(1 / 3, abs=1e-6)
        assert row["degraded_share"] == 0.0
        assert 0 < row["topic_diversity"] <= 1
        shown = {it["article_id"] for s in slates for it in s["items"]}
        assert row["coverage"] == pytest.approx(len(shown) / 40, abs=1e-6)  # 40 live

        dq = body["data_quality"]
        assert dq["unknown_article_clicks"] == 1
        assert dq["events_last_minute"]["click"] == 3  # received, retries included
        assert dq["rejected_events"] == {"missing": 1}
        assert dq["event_lag_s"]["click"] >= 0
        assert dq["catalog"]["live_articles"] == 40
        assert dq["catalog"]["newest_article_age_s"] > 0
        assert dq["catalog"]["live_without_embedding"] is None  # a baseline has no embeddings

        text = (await client.get("/metrics")).text
        labels = 'model_version="v1",position="1",surface="front_page",variant="production"'
        assert any(line.startswith("newsdesk_position_clicks_total{") and
                   all(part in line for part in labels.split(",")) and line.endswith(" 1.0")
                   for line in text.splitlines())
        assert "newsdesk_unknown_article_clicks_total 1.0" in text
        assert 'newsdesk_events_rejected_total{reason="missing"} 1.0' in text
        assert "newsdesk_psi_threshold 0.2" in text


async def test_ready_gauge_follows_readiness(tmp_path, dataset_dir, articles) -> None:  # noqa: ANN001
    from newsdesk.serving.app import create_app
    from tests.serving.conftest import ctr_factory, make_settings

    for version, ready in (("missing", 0.0), (None, 1.0)):  # 'missing' fails to load
        app = create_app(make_settings(tmp_path / str(version), dataset_dir,
                                       bundle_version=version),
                         recommender_factory=ctr_factory(articles))
        async with running(app) as client:
            assert (await client.get("/readyz")).status_code == (200 if ready else 503)
            app.state.monitor.refresh()
            text = (await client.get("/metrics")).text
        assert f"newsdesk_ready {ready}" in text
