"""The real pipeline end to end: a simulated dataset, a trained bundle, `newsdesk serve`.

The bundle is trained once per session on a small simulated world with the hashing embedder
(seconds, no model download); the serving clock is set to the end of the simulated period so
the world's articles are live.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("newsdesk.models.bundle")
pytest.importorskip("lightgbm")

from newsdesk.data.dataset import Dataset  # noqa: E402
from newsdesk.serving.app import create_app  # noqa: E402
from tests.serving.conftest import ADMIN_KEY, PATIENT, make_settings, running  # noqa: E402

pytestmark = [pytest.mark.ml, pytest.mark.slow]
NEWSDESK = [sys.executable, "-m", "newsdesk.cli.main"]


@dataclass(frozen=True)
class Trained:
    dataset: Path
    bundles: Path
    version: str
    clock_start: datetime
    users: list[str]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from newsdesk.pipelines.train import RankerConfig, TrainConfig, train

    root = tmp_path_factory.mktemp("bundle-serving")
    dataset = root / "dataset"
    subprocess.run([*NEWSDESK, "simulate", "--seed", "1", "--users", "300", "--days", "1",
                    "--impressions-per-day", "3000", "--articles-per-day", "200",
                    "--out", str(dataset)], check=True, capture_output=True, timeout=120)
    config = TrainConfig(embedder="hashing",
                         ranker=RankerConfig(num_boost_round=20, min_data_in_leaf=5))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's ALS warns (an error here) otherwise
        version = train(dataset, root / "bundles", config)
    ds = Dataset(dataset)
    end = ds.read("impressions")["timestamp"].max()
    users = ds.read("interactions")["user_id"].unique().sort().to_list()[:20]
    return Trained(dataset, root / "bundles", version, end + timedelta(minutes=1), users)


def _settings(tmp_path: Path, t: Trained, **kw: object):  # noqa: ANN202
    return make_settings(tmp_path, t.dataset, bundles_dir=t.bundles, clock_start=t.clock_start,
                         online_store_url=None, **{**PATIENT, **kw})


@pytest.mark.anyio
async def test_real_bundle_serves_learns_from_clicks_and_new_articles(
        tmp_path: Path, trained: Trained) -> None:
    app = create_app(_settings(tmp_path, trained))
    async with running(app) as client:
        ready = (await client.get("/readyz")).json()
        assert ready["model_version"] == trained.version
        user = trained.users[0]
        first = (await client.post("/v1/recommendations", json={"user_id": user, "k": 10})).json()
        assert first["degraded"] is False and len(first["items"]) == 10
        assert first["model_version"] == trained.version
        assert any(it["source"] not in ("trending", "editorial") for it in first["items"])

        # a click changes the next recommendation (read-your-writes through the online store)
        clicked = first["items"][0]["article_id"]
        ack = await client.post("/v1/events", json={"events": [
            {"type": "click", "event_id": "click-1", "user_id": user, "article_id": clicked,
             "request_id": first["request_id"]}]})
        assert ack.json()["accepted"] == 1 and ack.json()["applied"] is True
        second = (await client.post("/v1/recommendations", json={"user_id": user, "k": 10})
                  ).json()
        assert [it["article_id"] for it in second["items"]] != [
            it["article_id"] for it in first["items"]]

        # a new article is embedded and recommendable on return of the PUT
        now = app.state.services.clock()
        fresh = {"article_id": "breaking-1", "title": "Brand new story on quantum batteries",
                 "abstract": "Researchers announce a battery.", "category": "zz-new",
                 "published_at": datetime.fromtimestamp(now - 5, UTC).isoformat()}
        start = time.perf_counter()
        assert (await client.put("/v1/articles", json={"articles": [fresh]})).status_code == 200
        rec = (await client.post("/v1/recommendations", json={
            "user_id": user, "k": 5, "filters": {"category": ["zz-new"]}})).json()
        assert time.perf_counter() - start < 2.0
        assert [it["article_id"] for it in rec["items"]] == ["breaking-1"]
        model = app.state.services.registry.active
        assert model.related("breaking-1", 3, now) is not None  # the model knows it

        # a deleted article disappears at once
        gone = second["items"][0]["article_id"]
        assert (await client.delete(f"/v1/articles/{gone}")).status_code == 200
        third = (await client.post("/v1/recommendations", json={"user_id": user, "k": 50})
                 ).json()
        assert gone not in {it["article_id"] for it in third["items"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_newsdesk_serve_subprocess(tmp_path: Path, trained: Trained) -> None:
    port = _free_port()
    stderr_path = tmp_path / "server.log"
    stderr = stderr_path.open("wb")
    env = {**os.environ, "NEWSDESK_ADMIN_API_KEY": ADMIN_KEY, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [*NEWSDESK, "serve", "--dataset", str(trained.dataset), "--bundles",
         str(trained.bundles), "--port", str(port), "--state-dir", str(tmp_path / "state"),
         "--clock-start", trained.clock_start.isoformat(), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, stderr_path.read_text()[-2000:]
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server not ready in 60 s"
                time.sleep(0.2)
            r = client.post("/v1/recommendations", json={"user_id": trained.users[1], "k": 20})
            assert r.status_code == 200 and len(r.json()["items"]) == 20
            assert client.post("/v1/recommendations", content=b"{not json",
                               headers={"content-type": "application/json"}).status_code == 422
            bundles = client.get("/v1/admin/bundles", headers={"X-API-Key": ADMIN_KEY}).json()
            assert bundles["active"] == trained.version
            assert [b["version"] for b in bundles["bundles"]] == [trained.version]
            assert "newsdesk_http_request_duration_seconds" in client.get("/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stderr.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why
    assert proc.returncode in (0, -signal.SIGTERM), stderr_path.read_text()[-2000:]
    # the served slate was flushed to the durable exposure log on shutdown
    from newsdesk.data.eventlog import open_event_log

    with open_event_log(f"sqlite:///{tmp_path / 'state' / 'events.db'}") as log:
        assert log.count() == 1


@pytest.mark.anyio
async def test_imported_reader_gets_a_personalised_first_slate(
        tmp_path: Path, trained: Trained) -> None:
    """`serve --dataset` loads the readers' histories into the empty store at start, so a
    reader's very first slate follows their topics instead of the trending list."""
    import polars as pl

    ds = Dataset(trained.dataset)
    category = dict(ds.read("articles").select("article_id", "category").iter_rows())
    hist = ds.read("histories").filter(pl.col("article_ids").list.len() >= 5)
    app = create_app(_settings(tmp_path, trained))
    async with running(app) as client:
        deadline = time.monotonic() + 60
        while (ready := (await client.get("/readyz")).json())["status"] != "ready":
            assert ready["bootstrap"]["state"] in ("pending", "loading"), ready
            assert time.monotonic() < deadline, ready
            await asyncio.sleep(0.1)
        assert ready["bootstrap"]["state"] == "done" and ready["bootstrap"]["users"] > 0
        svc = app.state.services
        now = svc.clock()
        live = [e.article_id for e in svc.catalog.latest(now)]
        trending = [a for a, _ in svc.store.trending(10, now, candidates=live)]
        on_topic, on_topic_trending, differs = [], [], 0
        for user_id, articles in hist.head(30).select("user_id", "article_ids").iter_rows():
            assert svc.store.user_clicks(user_id), user_id  # loaded before the first request
            topics = {category[a] for a in articles}
            body = (await client.post("/v1/recommendations",
                                      json={"user_id": user_id, "k": 10})).json()
            slate = [it["article_id"] for it in body["items"]]
            assert not body["degraded"], body
            differs += slate != trending
            on_topic.append(np.mean([category[a] in topics for a in slate]))
            on_topic_trending.append(np.mean([category[a] in topics for a in trending]))
        assert differs >= 25
        assert np.mean(on_topic) > np.mean(on_topic_trending) + 0.1, (
            np.mean(on_topic), np.mean(on_topic_trending))


@pytest.mark.anyio
async def test_without_bootstrap_the_reader_starts_cold(tmp_path: Path, trained: Trained
                                                         ) -> None:
    ds = Dataset(trained.dataset)
    user = ds.read("histories")["user_id"][0]
    app = create_app(_settings(tmp_path, trained, bootstrap_store=False))
    async with running(app) as client:
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["bootstrap"]["state"] == "off"
        assert app.state.services.store.user_clicks(user) == []
