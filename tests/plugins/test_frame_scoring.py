"""The notebook API: a bundle scores a DataFrame of (user, article, time) exactly as the served
model scores the same reader and articles with the online store at that time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

pytest.importorskip("lightgbm")

from newsdesk.errors import ConfigError  # noqa: E402
from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.features.training_log import load_log, warm_store  # noqa: E402
from newsdesk.models.base import RequestContext  # noqa: E402
from newsdesk.models.bundle import load_recommender  # noqa: E402
from newsdesk.models.frame_scoring import load_bundle  # noqa: E402
from newsdesk.pipelines.train import TrainConfig, train  # noqa: E402
from newsdesk.simulation import SimulationConfig, simulate_to_dataset  # noqa: E402

pytestmark = [pytest.mark.ml]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("frame")
    simulate_to_dataset(SimulationConfig(seed=5, n_users=150, days=1.5, articles_per_day=30,
                                         impressions_per_day=2500, backlog_days=1.0,
                                         slate_size=8), root / "ds")
    cfg = TrainConfig.from_dict({"embedder": "hashing", "reference_requests": 0,
                                 "ranker": {"num_boost_round": 20, "min_data_in_leaf": 10}})
    with threadpool_limits(1, "blas"):
        version = train(root / "ds", root / "bundles", cfg)
    return root / "ds", root / "bundles" / version


def test_frame_scores_equal_the_served_scores_at_each_time(world: tuple[Path, Path]) -> None:
    dataset, bundle = world
    log = load_log(dataset)
    t0, t1 = log.time_range
    times = [t0 + 0.5 * (t1 - t0), t0 + 0.9 * (t1 - t0)]
    users = log.events.user_ids[:4] + ["never-seen-reader"]
    arts = [a.article_id for a in log.articles[-12:]] + ["not-an-article"]
    rows = [(u, a, t) for t in times for u in users for a in arts]
    frame = pl.DataFrame({"user_id": [r[0] for r in rows], "article_id": [r[1] for r in rows],
                          "time": [r[2] for r in rows]}).reverse()  # any row order
    scorer = load_bundle(bundle, dataset=dataset)
    scored = scorer.score(frame)
    assert scored.columns == ["user_id", "article_id", "time", "score"]
    assert scored["article_id"].to_list() == frame["article_id"].to_list()
    got = {(u, a, t): s for u, a, t, s in scored.iter_rows()}
    for t in times:  # the served model, its store replayed up to t
        store = MemoryOnlineStore(half_life_hours=6.0)
        warm_store(store, log, until=t)
        rec = load_recommender(bundle, store, ranker="lightgbm")
        for u in users:
            served = rec.score(RequestContext(user_id=u, now=t), arts)
            np.testing.assert_allclose([got[(u, a, t)] for a in arts], served, rtol=1e-6,
                                       atol=1e-9)
    per_time = scored.group_by("time").agg(pl.col("score").std())["score"].to_numpy()
    assert (per_time > 0).all()  # not a constant


def test_pandas_datetimes_and_features(world: tuple[Path, Path]) -> None:
    dataset, bundle = world
    log = load_log(dataset)
    t = log.time_range[1]
    df = pd.DataFrame({"user_id": [log.events.user_ids[0]] * 3,
                       "article_id": [a.article_id for a in log.articles[-3:]],
                       "time": pd.to_datetime([t] * 3, unit="s", utc=True)})
    scorer = load_bundle(bundle, dataset=dataset)
    out = scorer.score(df)
    assert isinstance(out, pd.DataFrame) and out["score"].notna().all()
    same = scorer.score(pl.from_pandas(df).with_columns(pl.lit(t).alias("time")))
    np.testing.assert_allclose(out["score"].to_numpy(), same["score"].to_numpy(), rtol=1e-6)
    x = scorer.features(df)
    assert list(x.columns) == scorer.feature_names and len(x) == 3
    assert (x["user_log_clicks"] > 0).all()  # the reader's history was replayed
    with pytest.raises(ConfigError, match="column 'time' is missing"):
        scorer.score(df.drop(columns=["time"]))


def test_without_a_dataset_every_reader_is_new(world: tuple[Path, Path]) -> None:
    dataset, bundle = world
    log = load_log(dataset)
    df = pl.DataFrame({"user_id": [log.events.user_ids[0], "x"],
                       "article_id": [log.articles[-1].article_id] * 2,
                       "time": [log.time_range[1]] * 2})
    x = load_bundle(bundle).features(df)
    assert (x["user_log_clicks"] == 0).all() and (x["log_impressions"] == 0).all()
