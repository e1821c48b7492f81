"""The training loop end to end on a real event log, real training and replay: the promote
path, the rejection path with a deliberately worse candidate, retries, audit and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.models.active_bundle import active_version, read_active
from newsdesk.models.bundle import list_bundles, resolve_bundle
from newsdesk.pipelines.loop import CycleFailed, PipelineRunner

from .conftest import FlakyTrainer, ReversedTrainer, World, real_trainer
from .world import pipeline_config

pytestmark = [pytest.mark.ml, pytest.mark.slow]


@contextlib.asynccontextmanager
async def serving(w: World, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    """The real app on the world's bundles (hashing embedder), watching ACTIVE every 50 ms."""
    from newsdesk.serving.app import create_app
    from newsdesk.serving.settings import ServeSettings

    newest = Dataset(w.dataset).scan("impressions").select(pl.col("timestamp").max()).collect()
    settings = ServeSettings(dataset_dir=w.dataset, bundles_dir=w.bundles,
                             state_dir=tmp_path / "serve-state", online_store_url="memory://",
                             log_level="warning", watch_active_s=0.05, bootstrap_store=False,
                             ranker="lightgbm", clock_start=newest.item())
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app.state.services


async def _served_versions(client: httpx.AsyncClient, until: asyncio.Future) -> list[str]:
    """Recommendations requested every 50 ms while the pipeline runs; their model versions."""
    versions = []
    while not until.done():
        r = await client.post("/v1/recommendations", json={"user_id": "u1", "k": 5})
        assert r.status_code == 200, r.text
        versions.append(r.json()["model_version"])
        await asyncio.sleep(0.05)
    return versions


async def _cycle_while_serving(client: httpx.AsyncClient, runner: PipelineRunner) -> tuple[
        dict, list[str]]:
    cycle = asyncio.ensure_future(asyncio.to_thread(runner.run_once))
    versions = await _served_versions(client, cycle)
    return await cycle, versions


async def _wait_for(pred, timeout_s: float = 20.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not pred():
        await asyncio.sleep(0.05)
    return bool(pred())


def _prom(state: Path) -> str:
    return (state / "pipeline.prom").read_text()


@pytest.mark.anyio
async def test_promote_path_exports_trains_evaluates_and_running_server_swaps(
        world: World, tmp_path: Path) -> None:
    w = world.copy(tmp_path)
    before = Dataset(w.dataset).count("impressions") + Dataset(w.dataset).count("interactions")
    runner = PipelineRunner(w.dataset, w.bundles, config=pipeline_config(),
                            event_log=w.event_log_url, state_dir=tmp_path / "state")
    async with serving(w, tmp_path) as (client, svc):
        assert svc.registry.version == w.active
        rec, versions = await _cycle_while_serving(client, runner)
        assert rec["decision"] == "promoted", rec["reasons"]
        assert set(versions) == {w.active}  # served the old model while the cycle ran
        # the running server follows the pointer: hot swap, and requests get the new model
        assert await _wait_for(lambda: svc.registry.version == rec["candidate"])
        r = await client.post("/v1/recommendations", json={"user_id": "u1", "k": 5})
        assert r.json()["model_version"] == rec["candidate"]

    after = Dataset(w.dataset).count("impressions") + Dataset(w.dataset).count("interactions")
    assert after - before == w.n_events == sum(rec["export"]["added"].values())
    assert rec["active_before"] == w.active and rec["candidate"] != w.active
    assert active_version(w.bundles) == rec["candidate"] == rec["active_after"]
    assert resolve_bundle(w.bundles).name == rec["candidate"]  # what a restart serves
    assert read_active(w.bundles)["previous"] == w.active
    comps = {c["metric"]: c for c in rec["gate"]["comparisons"]}
    assert set(comps) == {"auc", "ndcg@10", "mrr"}
    assert comps["auc"]["n_units"] > 100 and comps["auc"]["ci_low"] <= comps["auc"]["diff"]
    assert set(rec["steps_s"]) >= {"export", "train", "evaluate", "promote"}
    # the audit line and the metrics say the same
    (line,) = runner.audit.records()
    assert line["decision"] == "promoted" and line["candidate"] == rec["candidate"]
    prom = _prom(tmp_path / "state")
    assert 'newsdesk_pipeline_decisions_total{decision="promoted"} 1.0' in prom
    assert f'newsdesk_pipeline_active_info{{version="{rec["candidate"]}"}} 1.0' in prom
    # a second cycle finds nothing new to export (idempotent) and still gates
    again = PipelineRunner(w.dataset, w.bundles, config=pipeline_config(),
                           event_log=w.event_log_url, state_dir=tmp_path / "state")
    stats = again._export()
    assert stats.chunks == 0 and sum(stats.added.values()) == 0
    assert Dataset(w.dataset).count("impressions") + Dataset(w.dataset).count(
        "interactions") == after


@pytest.mark.anyio
async def test_worse_candidate_is_rejected_and_old_model_keeps_serving(
        world: World, tmp_path: Path) -> None:
    w = world.copy(tmp_path)
    runner = PipelineRunner(w.dataset, w.bundles, config=pipeline_config(),
                            event_log=w.event_log_url, state_dir=tmp_path / "state",
                            trainer=ReversedTrainer(real_trainer()))
    async with serving(w, tmp_path) as (client, svc):
        rec, versions = await _cycle_while_serving(client, runner)
        assert rec["decision"] == "rejected"
        await asyncio.sleep(0.3)  # several watcher polls
        assert svc.registry.version == w.active and svc.registry.status()["staged"] == []
        r = await client.post("/v1/recommendations", json={"user_id": "u1", "k": 5})
        assert set(versions) | {r.json()["model_version"]} == {w.active}

    auc = next(c for c in rec["gate"]["comparisons"] if c["metric"] == "auc")
    assert auc["ci_high"] < -0.05  # the reversed ranker is far worse, and the figures say so
    assert any("worse than margin" in r for r in rec["reasons"])
    assert active_version(w.bundles) == w.active == rec["active_after"]
    assert resolve_bundle(w.bundles).name == w.active  # a restart still serves the old one
    assert rec["candidate"] in {b.version for b in list_bundles(w.bundles)}  # kept on disk
    assert 'newsdesk_pipeline_decisions_total{decision="rejected"} 1.0' in _prom(
        tmp_path / "state")


def test_failed_step_is_retried_with_backoff_and_recorded(tmp_path: Path, world: World) -> None:
    w = world.copy(tmp_path)
    fresh = tmp_path / "fresh-bundles"  # no active bundle: the first candidate is promoted
    sleeps: list[float] = []
    cfg = pipeline_config(retry={"attempts": 3, "backoff_s": 2.0, "max_backoff_s": 3.0})
    runner = PipelineRunner(w.dataset, fresh, config=cfg, state_dir=tmp_path / "state",
                            trainer=FlakyTrainer(real_trainer(), failures=2),
                            sleep=sleeps.append)
    rec = runner.run_once()
    assert rec["decision"] == "promoted" and rec["attempt"] == 3
    assert sleeps == [2.0, 3.0]  # 2 s, then 4 s capped at max_backoff_s
    decisions = [r["decision"] for r in runner.audit.records()]
    assert decisions == ["failed", "failed", "promoted"]
    assert "disk full" in runner.audit.records()[0]["error"]
    assert runner.audit.records()[0]["step"] == "train"


def test_exhausted_retries_leave_the_active_bundle_serving(tmp_path: Path, world: World) -> None:
    w = world.copy(tmp_path)
    runner = PipelineRunner(w.dataset, w.bundles, config=pipeline_config(),
                            event_log=w.event_log_url, state_dir=tmp_path / "state",
                            trainer=FlakyTrainer(real_trainer(), failures=10),
                            sleep=lambda s: None)
    with pytest.raises(CycleFailed, match="after 2 attempt"):
        runner.run_once()
    assert active_version(w.bundles) == w.active
    recs = runner.audit.records()
    assert [r["decision"] for r in recs] == ["failed", "failed"]
    assert all(r["active_after"] == w.active for r in recs)
    assert 'newsdesk_pipeline_decisions_total{decision="failed"} 2.0' in _prom(
        tmp_path / "state")
