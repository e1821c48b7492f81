"""Exploration in the serving path: the seeded share, the PL slate and what the log records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.schema import Article
from newsdesk.errors import ConfigError
from newsdesk.experiments.exploration import marginals, pl_logits
from newsdesk.models.base import ScoredArticle
from newsdesk.serving.app import create_app
from newsdesk.serving.exploration import (
    DETERMINISTIC,
    Explorer,
    SurfaceExploration,
    pl_policy_name,
)
from newsdesk.serving.settings import load_settings
from tests.serving.conftest import (
    PATIENT,
    ctr_factory,
    make_settings,
    running,
    settled,
    wait_until,
)

pytestmark = pytest.mark.anyio


def _pool(n: int) -> list[ScoredArticle]:
    return [ScoredArticle(f"a{i}", float(np.cos(i)), "", "model") for i in range(n)]


def test_share_is_a_seeded_hash_of_the_request_id() -> None:
    """Two explorers with the same seed (two workers) make the same decisions; the share holds;
    another seed makes different ones."""
    ids = [f"req-{i}" for i in range(20_000)]
    one = Explorer(default=SurfaceExploration(share=0.05), seed=3)
    two = Explorer(default=SurfaceExploration(share=0.05), seed=3)
    other = Explorer(default=SurfaceExploration(share=0.05), seed=4)
    a = [one.plan(r, "front_page") is not None for r in ids]
    assert a == [two.plan(r, "front_page") is not None for r in ids]
    assert a != [other.plan(r, "front_page") is not None for r in ids]
    share = np.mean(a)
    assert abs(share - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(ids))


def test_per_surface_settings() -> None:
    settings = load_settings(bundles_dir=Path("/tmp/none"), exploration_share=0.1,
                             exploration_temperature=0.5,
                             exploration_surfaces={"newsletter": {"share": 0.0},
                                                   "article_page": {"temperature": 2.0}})
    ex = Explorer.from_settings(settings)
    assert ex.config("front_page") == SurfaceExploration(share=0.1, temperature=0.5, pool=10)
    assert ex.config("article_page").temperature == 2.0
    assert all(ex.plan(f"r{i}", "newsletter") is None for i in range(500))
    with pytest.raises(ConfigError, match="exploration_surfaces"):
        load_settings(bundles_dir=Path("/tmp/none"),
                      exploration_surfaces={"front_page": {"share": 1.5}})
    with pytest.raises(ConfigError, match="exploration_share"):
        load_settings(bundles_dir=Path("/tmp/none"), exploration_share=-0.1)


def test_serve_logs_the_exact_marginals_and_the_policy() -> None:
    ex = Explorer(default=SurfaceExploration(share=1.0, temperature=0.4, pool=6))
    plan = ex.plan("r1", "front_page")
    assert plan is not None and plan.pool_size(5) == 11
    pool = _pool(11)
    served = ex.serve(pool, 5, plan, personalised=11)
    idx = [int(it.article_id[1:]) for it in served.items]
    logits = pl_logits(np.array([it.score for it in pool]), 0.4)
    assert served.propensities == pytest.approx(marginals(logits, idx, range(5)).tolist())
    assert served.policy == pl_policy_name(0.4, 11) == "plackett_luce(T=0.4,M=11)"
    # the same request id draws the same slate (reproducible)
    assert ex.serve(pool, 5, ex.plan("r1", "front_page"), 11).items == served.items


def test_thin_pool_and_no_plan_are_deterministic() -> None:
    ex = Explorer(default=SurfaceExploration(share=1.0))
    pool = _pool(8)
    for served in (ex.serve(pool, 5, ex.plan("r", "front_page"), personalised=4),
                   ex.serve(pool, 5, None, personalised=8)):
        assert served.policy == DETERMINISTIC
        assert served.propensities == [1.0] * 5
        assert served.items == pool[:5]


def _app(tmp_path: Path, dataset_dir: Path, articles: list[Article], **overrides) -> FastAPI:
    return create_app(make_settings(tmp_path, dataset_dir, **overrides),
                      recommender_factory=ctr_factory(articles))


async def test_served_slates_log_policy_and_propensities(tmp_path: Path, dataset_dir: Path,
                                                         articles: list[Article]) -> None:
    """Through the real app: share 0.5 -> about half the slates are PL draws with propensities
    < 1 at some position; the rest deterministic with 1.0; each row names its policy."""
    app = _app(tmp_path, dataset_dir, articles, exploration_share=0.5,
               exploration_temperature=0.05, exploration_pool=8, **PATIENT)
    n = 60
    async with running(app) as client:
        await settled(client)
        bodies = []
        for i in range(n):
            r = await client.post("/v1/recommendations", json={"user_id": f"u{i}", "k": 6},
                                  headers={"X-Request-ID": f"req-{i}"})
            assert r.status_code == 200 and not r.json()["degraded"]
            bodies.append(r.json())
        log = app.state.services.event_log
        assert await wait_until(lambda: log.count() == n)
        rows = {e.request_id: e for _, e in log.read()}
        explorer = app.state.services.explorer
    explored = 0
    for body in bodies:
        row = rows[body["request_id"]]
        assert row.article_ids == [it["article_id"] for it in body["items"]]
        assert len(row.article_ids) == 6
        if explorer.plan(body["request_id"], "front_page") is None:
            assert row.policy == DETERMINISTIC and row.propensities == [1.0] * 6
        else:
            explored += 1
            assert row.policy is not None and row.policy.startswith("plackett_luce(T=0.05,M=")
            assert all(0 < p <= 1 for p in row.propensities)
            assert min(row.propensities) < 1.0
    assert 10 <= explored <= 50


def test_old_impressions_without_policy_stay_readable(tmp_path: Path) -> None:
    """A dataset written before `policy` existed reads with policy = null, also mixed with
    parts that have it."""
    root = tmp_path / "ds"
    with DatasetWriter(root, source="test") as writer:
        writer.table("impressions").write_row({
            "request_id": "new", "user_id": "u", "timestamp": np.datetime64(0, "us").item(),
            "article_ids": ["a"], "propensities": [0.5], "policy": "plackett_luce(T=1,M=3)"})
    # the columns impressions had before the additive fields (policy, teams, ...)
    before = {"request_id", "user_id", "timestamp", "surface", "article_ids", "propensities",
              "experiment", "variant"}
    old_schema = pa.schema([f for f in Dataset(root).arrow("impressions").schema
                            if f.name in before])
    old = pa.table({"request_id": ["old"], "user_id": ["u"],
                    "timestamp": pa.array([0], pa.timestamp("us", tz="UTC")),
                    "surface": [None], "article_ids": [["b"]], "propensities": [None],
                    "experiment": [None], "variant": [None]}, schema=old_schema)
    pq.write_table(old, root / "impressions" / "part-00000-old.parquet")
    df = Dataset(root).read("impressions").sort("request_id")
    assert df["request_id"].to_list() == ["new", "old"]
    assert df["policy"].to_list() == ["plackett_luce(T=1,M=3)", None]
    assert Dataset(root).arrow("impressions").column("policy").null_count == 1
