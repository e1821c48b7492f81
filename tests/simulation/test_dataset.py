"""The written dataset: determinism, schema, CLI, and logs that match the known truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.data.stats import dataset_stats
from newsdesk.simulation import SimulationConfig, World, simulate_to_dataset

# few articles per day so that every (window, article) pair is shown often enough to test
CONFIG = SimulationConfig(seed=11, n_users=2_000, days=1.0, articles_per_day=120,
                          impressions_per_day=40_000, slate_size=8)
NEWSDESK = Path(sys.executable).parent / "newsdesk"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sim") / "ds"
    return out, simulate_to_dataset(CONFIG, out)


@pytest.fixture(scope="module")
def shown(sim: tuple[Path, dict]) -> pl.DataFrame:
    """One row per shown item with its click outcome and its TRUE click probability."""
    out, _ = sim
    ds = Dataset(out)
    imps = ds.read("impressions").with_columns(
        pl.int_ranges(pl.col("article_ids").list.len()).alias("position"))
    rows = imps.explode(["article_ids", "propensities", "position"]).rename(
        {"article_ids": "article_id", "propensities": "propensity"})
    clicks = (ds.read("interactions").filter(pl.col("type") == "click")
              .select("request_id", "article_id", pl.lit(True).alias("clicked")))
    rows = rows.join(clicks, on=["request_id", "article_id"], how="left").with_columns(
        pl.col("clicked").fill_null(False))
    world = World.load(out)
    u = rows["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
    a = rows["article_id"].str.slice(1).cast(pl.Int64).to_numpy()
    t = rows["timestamp"].dt.epoch("us").to_numpy() / 1e6
    k = rows["position"].to_numpy()
    return rows.with_columns(
        pl.Series("p", world.click_probability(u, a, t, k)),
        pl.Series("theta", world.user_theta[u, world.article_topic[a]].astype(np.float64)),
        pl.Series("exam", world.examination(k)),
    )


def _z(group: pl.DataFrame) -> np.ndarray:
    c, p, v = (group[col].to_numpy() for col in ("clicks", "p", "var"))
    return (c - p) / np.sqrt(v)


def _by(shown: pl.DataFrame, key: str) -> pl.DataFrame:
    return shown.group_by(key).agg(
        pl.col("clicked").sum().alias("clicks"), pl.col("p").sum().alias("p"),
        (pl.col("p") * (1 - pl.col("p"))).sum().alias("var"), pl.len().alias("n"),
    ).sort(key)


def test_tables_and_summary(sim: tuple[Path, dict]) -> None:
    out, summary = sim
    ds = Dataset(out)
    assert ds.source == "simulation"
    assert ds.count("impressions") == summary["impressions"] == CONFIG.n_impressions
    assert ds.count("articles") == CONFIG.n_articles
    assert ds.count("interactions") == 2 * summary["clicks"]
    assert 0.005 < summary["ctr"] < 0.2
    arts = ds.read("articles")
    assert arts["article_id"].is_unique().all() and (arts["title"].str.len_chars() > 10).all()
    assert set(arts["category"].unique()) <= {"politics", "sports", "business", "technology",
                                               "science", "health", "culture", "travel",
                                               "food", "climate"}
    stats = dataset_stats(out)
    assert stats["catalog_coverage"] == 1.0 and stats["users"] > 1_000


def test_clicks_are_attributed_to_the_slate_that_showed_them(sim: tuple[Path, dict]) -> None:
    ds = Dataset(sim[0])
    inter = ds.read("interactions")
    imps = ds.read("impressions").explode("article_ids").select(
        "request_id", pl.col("article_ids").alias("article_id"), "user_id",
        pl.col("timestamp").alias("shown_at"))
    joined = inter.join(imps, on=["request_id", "article_id", "user_id"], how="left")
    assert joined["shown_at"].null_count() == 0
    assert (joined["timestamp"] > joined["shown_at"]).all()
    dwell = inter.filter(pl.col("type") == "dwell")
    assert dwell["dwell_seconds"].null_count() == 0 and (dwell["dwell_seconds"] > 0).all()
    assert inter["event_id"].is_unique().all()


def test_histories_predate_the_log(sim: tuple[Path, dict]) -> None:
    ds = Dataset(sim[0])
    hist = ds.read("histories").explode("article_ids").join(
        ds.read("articles").select(pl.col("article_id").alias("article_ids"), "published_at"),
        on="article_ids")
    assert (hist["published_at"] < hist["as_of"]).all()
    warm = ds.read("histories")["user_id"].n_unique()
    assert 0.3 * CONFIG.n_users < warm < 0.95 * CONFIG.n_users  # cold and warm users exist


def test_ctr_per_position_matches_the_click_model(shown: pl.DataFrame) -> None:
    per_pos = _by(shown, "position")
    assert per_pos.height == CONFIG.slate_size
    assert np.abs(_z(per_pos)).max() < 4.5
    # power check: the same test rejects a model without position bias
    flat = shown.with_columns((pl.col("p") / pl.col("exam")).alias("p"))
    assert np.abs(_z(_by(flat, "position"))).max() > 10


def test_ctr_per_interest_bucket_matches_the_click_model(shown: pl.DataFrame) -> None:
    bucket = np.digitize(shown["theta"].to_numpy(), [0.01, 0.05, 0.15, 0.4])
    bucketed = shown.with_columns(pl.Series("bucket", bucket))
    per_bucket = _by(bucketed, "bucket")
    assert per_bucket.height == 5
    assert np.abs(_z(per_bucket)).max() < 4.5
    ctr = (per_bucket["clicks"] / per_bucket["n"]).to_numpy()
    assert ctr[-1] > 3 * ctr[0]  # interest matters


def test_logged_propensities_match_inclusion_frequencies(shown: pl.DataFrame) -> None:
    assert shown["propensity"].min() > 0 and shown["propensity"].max() <= 1
    window_us = int(CONFIG.window_minutes * 60 * 1e6)
    start_us = int(CONFIG.start_unix * 1e6)
    w = shown.with_columns(
        ((pl.col("timestamp").dt.epoch("us") - start_us) // window_us).alias("window"))
    requests = w.group_by("window").agg(pl.col("request_id").n_unique().alias("requests"))
    pairs = w.group_by("window", "article_id").agg(
        pl.len().alias("count"), pl.col("propensity").min().alias("pmin"),
        pl.col("propensity").max().alias("pmax")).join(requests, on="window")
    # the logger fixes pi per window: one propensity per (window, article)
    assert (pairs["pmax"] - pairs["pmin"]).abs().max() < 1e-12
    big = pairs.filter((pl.col("requests") * pl.col("pmin") > 20) & (pl.col("pmin") < 1))
    assert big.height > 500
    n, p, c = (big[col].to_numpy() for col in ("requests", "pmin", "count"))
    z = (c - n * p) / np.sqrt(n * p * (1 - p))
    assert abs(z.sum() / np.sqrt(z.size)) < 4.5
    assert np.abs(z).max() < 6


def test_same_seed_gives_identical_tables(tmp_path: Path) -> None:
    cfg = SimulationConfig(seed=3, n_users=300, days=0.5, articles_per_day=100,
                           impressions_per_day=6_000)
    simulate_to_dataset(cfg, tmp_path / "a")
    simulate_to_dataset(cfg, tmp_path / "b")
    simulate_to_dataset(SimulationConfig(**{**cfg.to_dict(), "seed": 4}), tmp_path / "c")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert len(files) == 4
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    imps = Path("impressions/part-00000.parquet")
    assert (tmp_path / "a" / imps).read_bytes() != (tmp_path / "c" / imps).read_bytes()


def test_cli_simulate_then_stats(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    run = subprocess.run([str(NEWSDESK), "simulate", "--seed", "1", "--users", "500",
                          "--days", "1", "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["users"] == 500 and summary["impressions"] == 50_000
    stats = subprocess.run([str(NEWSDESK), "stats", str(out), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["impressions"] == 50_000
    assert World.load(out).n_users == 500


def test_dwell_times_follow_the_documented_lognormal(sim: tuple[Path, dict]) -> None:
    out, _ = sim
    world = World.load(out)
    dwell = Dataset(out).read("interactions").filter(pl.col("type") == "dwell")
    u = dwell["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
    a = dwell["article_id"].str.slice(1).cast(pl.Int64).to_numpy()
    c = world.config
    mu = (np.log(c.dwell_median_seconds)
          + c.dwell_interest_weight * np.log1p(c.n_topics * world.interest(u, a))
          + c.dwell_quality_weight * world.article_quality[a])
    resid = np.log(dwell["dwell_seconds"].to_numpy()) - mu
    assert abs(resid.mean()) < 4 * c.dwell_sigma / np.sqrt(resid.size)
    assert resid.std() == pytest.approx(c.dwell_sigma, rel=0.05)
