"""The Spark engine's pieces besides the training set: settings, the install hint, the
session's binding, export/compaction, Spark ML ALS and the trending snapshot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from newsdesk.errors import ConfigError
from newsdesk.pipelines.spark.session import SparkSettings


def test_settings_refuse_bad_values_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="field 'master'"):
        SparkSettings.build(master="http://example.org")
    with pytest.raises(ConfigError, match="field 'driver_memory'"):
        SparkSettings.build(driver_memory="lots")
    with pytest.raises(ConfigError, match="field 'conf'"):
        SparkSettings.build(conf={"driver.memory": "1g"})
    conf = SparkSettings.build(master="spark://10.0.0.5:7077").spark_conf()
    assert conf["spark.master"] == "spark://10.0.0.5:7077"
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false"


def test_default_master_uses_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSDESK_SPARK_MASTER", raising=False)
    import os

    assert SparkSettings.build().master == f"local[{os.cpu_count()}]"
    monkeypatch.setenv("NEWSDESK_SPARK_MASTER", "local[1]")
    assert SparkSettings.build().master == "local[1]"


def test_missing_pyspark_names_the_extra() -> None:
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "from newsdesk.pipelines.spark import spark_session\n"
            "spark_session()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode != 0
    assert "pip install 'newsdesk[spark]'" in out.stderr


@pytest.mark.spark
@pytest.mark.timeout(900)  # the first Spark test pays the JVM start
def test_session_is_local_and_bound_to_loopback(spark: Any) -> None:
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert conf.get("spark.ui.enabled") == "false"
    assert spark.sparkContext.uiWebUrl is None


@pytest.mark.spark
@pytest.mark.timeout(900)  # the first Spark test pays the JVM start
def test_export_is_partitioned_by_date_and_idempotent(spark: Any, small_world: Path,
                                                      tmp_path: Path) -> None:
    from newsdesk.data.dataset import Dataset
    from newsdesk.pipelines.spark.export import export_events

    ds = Dataset(small_world)
    first = export_events(spark, small_world, tmp_path / "events")
    assert first == {"impressions": ds.count("impressions"),
                     "interactions": ds.count("interactions")}
    dates = sorted(p.name for p in (tmp_path / "events" / "impressions").glob("date=*"))
    expect = (ds.read("impressions").select(pl.col("timestamp").dt.strftime("date=%Y-%m-%d"))
              .unique().sort("timestamp")["timestamp"].to_list())
    assert dates == expect and len(dates) >= 2
    for d in dates:  # compacted: one file per date
        assert len(list((tmp_path / "events" / "impressions" / d).glob("*.parquet"))) == 1
    again = export_events(spark, small_world, tmp_path / "events")
    assert again == first
    ids = pl.read_parquet(tmp_path / "events" / "interactions" / "**" / "*.parquet")["event_id"]
    assert ids.n_unique() == len(ids) == first["interactions"]  # nothing doubled by the re-run


@pytest.mark.spark
@pytest.mark.timeout(900)  # the first Spark test pays the JVM start
def test_spark_als_is_a_working_collaborative_model(spark: Any, small_world: Path) -> None:
    from newsdesk.content import make_embedder
    from newsdesk.pipelines.spark.engine import build_catalog
    from newsdesk.pipelines.spark.generators import collaborative_generator, fit_clicks
    from newsdesk.pipelines.spark.tables import load_spark_log
    from newsdesk.pipelines.train import TrainConfig, _builder_and_workspace

    log = load_spark_log(spark, small_world)
    catalog = build_catalog(log.articles, make_embedder("hashing"))
    _, ws = _builder_and_workspace(TrainConfig(), catalog, 1, 10)
    clicks = fit_clicks(log, None)
    cf = collaborative_generator(ws, clicks, catalog.size, {"factors": 8, "iterations": 5},
                                 seed=0, als="spark")
    pairs = clicks.filter("aidx >= 0").select("user_id", "aidx").toArrow()
    users = set(pairs.column("user_id").to_pylist())
    assert set(cf.user_index_) == users
    assert cf.item_factors_.shape == (catalog.size, 8)
    clicked = np.unique(pairs.column("aidx").to_numpy())
    assert np.abs(cf.item_factors_[clicked]).sum(axis=1).min() > 0
    # the factors rank a user's own clicked articles above the others (it learned something)
    u = next(iter(users))
    own = np.unique(pairs.column("aidx").to_numpy()[
        np.asarray(pairs.column("user_id").to_pylist()) == u])
    scores = cf.item_factors_ @ cf.user_factors_[cf.user_index_[u]]
    others = np.setdiff1d(clicked, own)
    assert scores[own].mean() > scores[others].mean()


@pytest.mark.spark
@pytest.mark.timeout(900)  # the first Spark test pays the JVM start
def test_trending_snapshot_matches_the_log(spark: Any, small_world: Path) -> None:
    from newsdesk.features.replay import LN2
    from newsdesk.features.training_log import load_log
    from newsdesk.pipelines.spark.pointintime import trending_snapshot
    from newsdesk.pipelines.spark.tables import load_spark_log

    local = load_log(small_world)
    t0, t1 = local.time_range
    at = t0 + 0.6 * (t1 - t0)
    snap = trending_snapshot(load_spark_log(spark, small_world), at, half_life_hours=6.0)
    got = snap.toArrow()
    ev = local.events
    lam = LN2 / (6.0 * 3600.0)
    keys = np.concatenate([ev.hist_key, ev.click_key])
    ts = np.concatenate([ev.hist_ts, ev.click_ts])
    ok = (keys >= 0) & (ts < at)
    dc = np.bincount(keys[ok], weights=np.exp(-lam * (at - ts[ok])), minlength=ev.n_keys)
    ok_i = (ev.exp_key >= 0) & (ev.exp_ts < at)
    ci = np.bincount(ev.exp_key[ok_i], minlength=ev.n_keys)
    k = got.column("akey").to_numpy()
    assert len(k) > 10
    np.testing.assert_allclose(got.column("dc").to_numpy(), dc[k], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got.column("ci").to_numpy(), ci[k])
