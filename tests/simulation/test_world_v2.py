"""World v2: v1 untouched, determinism, oracle consistency, and the story / entity signals."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.errors import ConfigError
from newsdesk.simulation import SimulationConfig, World, build_world, simulate_to_dataset
from newsdesk.simulation.config import V2_FIELDS
from newsdesk.simulation.vocab_v2 import story_name, topic_entities
from newsdesk.simulation.world_v2 import WorldV2

NEWSDESK = Path(sys.executable).parent / "newsdesk"
# computed on main (e40018a and again at 0407ec9, before world v2 existed) with
# `content_hash` below. The Parquet bytes matched too on this machine, but they carry the
# pyarrow version, so the test hashes what the tables hold rather than their bytes.
V1_CONFIG = SimulationConfig(seed=11, n_users=400, days=1.0, articles_per_day=120,
                             impressions_per_day=3000, german_share=0.1)
V1_HASH_ON_MAIN = "4fc858820e1542165a288218316281a275719c5903547c884d298ae7044d4347"
V2_CONFIG = SimulationConfig.v2(seed=4, n_users=1500, days=1.0, articles_per_day=150,
                                impressions_per_day=30_000, backlog_days=1.0)


def content_hash(root: Path) -> str:
    """sha256 of every dataset table's contents (Arrow IPC of the table read back, file by
    file), the world's arrays and config.json (npz entries carry write times, so the arrays
    are hashed, not the file)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.parquet")):
        if p.parent.name == "simulation":
            continue
        table = pq.read_table(p)
        h.update(str(p.relative_to(root)).encode())
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
            writer.write_table(table.replace_schema_metadata(None))
        h.update(sink.getvalue().to_pybytes())
    with np.load(root / "simulation" / "world.npz") as z:
        for k in sorted(z.files):
            h.update(k.encode())
            h.update(np.ascontiguousarray(z[k]).tobytes())
    h.update((root / "simulation" / "config.json").read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, WorldV2]:
    out = tmp_path_factory.mktemp("v2") / "ds"
    summary = simulate_to_dataset(V2_CONFIG, out)
    world = World.load(out)
    assert isinstance(world, WorldV2)
    return out, summary, world


def test_v1_dataset_is_byte_identical_to_main(tmp_path: Path) -> None:
    simulate_to_dataset(V1_CONFIG, tmp_path / "v1")
    assert content_hash(tmp_path / "v1") == V1_HASH_ON_MAIN
    assert not set(V2_FIELDS) & set(V1_CONFIG.to_dict())  # v1 config.json as before
    assert type(World.load(tmp_path / "v1")) is World


def test_v2_config_round_trip_and_refusals() -> None:
    assert SimulationConfig.from_dict(V2_CONFIG.to_dict()) == V2_CONFIG
    assert V2_CONFIG.german_share == 0.2
    with pytest.raises(ConfigError, match="world"):
        SimulationConfig(world="v3")
    with pytest.raises(ConfigError, match="dismiss_rate"):
        SimulationConfig.v2(dismiss_rate=1.5)


def test_v2_same_seed_same_bytes(tmp_path: Path) -> None:
    small = SimulationConfig.v2(seed=3, n_users=300, days=0.5, articles_per_day=100,
                                impressions_per_day=4000)
    simulate_to_dataset(small, tmp_path / "a")
    simulate_to_dataset(small, tmp_path / "b")
    simulate_to_dataset(SimulationConfig.v2(**{**small.to_dict(), "seed": 4}), tmp_path / "c")
    assert content_hash(tmp_path / "a") == content_hash(tmp_path / "b")
    assert content_hash(tmp_path / "a") != content_hash(tmp_path / "c")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert Path("simulation/dismissals.parquet") in files  # side tables are deterministic too
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


@pytest.fixture(scope="module")
def shown(v2: tuple[Path, dict, WorldV2]) -> pl.DataFrame:
    """One row per shown item: click / dismiss outcome, device, and the oracle's
    probabilities computed from the SAVED world."""
    out, _, world = v2
    ds = Dataset(out)
    imps = ds.read("impressions").with_columns(
        pl.int_ranges(pl.col("article_ids").list.len()).alias("position"))
    rows = imps.explode(["article_ids", "position"]).rename({"article_ids": "article_id"})
    clicks = (ds.read("interactions").filter(pl.col("type") == "click")
              .select("request_id", "article_id", pl.lit(True).alias("clicked")))
    dismissed = (pl.read_parquet(out / "simulation" / "dismissals.parquet")
                 .select("request_id", "article_id", pl.lit(True).alias("dismissed")))
    devices = pl.read_parquet(out / "simulation" / "requests.parquet")
    rows = (rows.join(clicks, on=["request_id", "article_id"], how="left")
            .join(dismissed, on=["request_id", "article_id"], how="left")
            .join(devices, on="request_id", how="left")
            .with_columns(pl.col("clicked").fill_null(False),
                          pl.col("dismissed").fill_null(False)))
    u = rows["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
    a = rows["article_id"].str.slice(1).cast(pl.Int64).to_numpy()
    t = rows["timestamp"].dt.epoch("us").to_numpy() / 1e6
    k = rows["position"].to_numpy()
    d = (rows["device"] == "mobile").cast(pl.Int8).to_numpy()
    return rows.with_columns(
        pl.Series("p_click", world.click_probability(u, a, t, k, d)),
        pl.Series("p_dismiss", world.dismiss_probability(u, a, t, k, d)),
        pl.Series("mobile", d))


def _z(observed: np.ndarray, p: np.ndarray) -> float:
    return float((observed.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum()))


def test_oracle_probabilities_are_the_ones_the_generator_drew_from(v2, shown) -> None:
    _, summary, _ = v2
    rows = shown
    assert rows["device"].null_count() == 0
    assert rows["clicked"].sum() == summary["clicks"]
    assert rows["dismissed"].sum() == summary["dismissals"] > 0
    assert not (rows["clicked"] & rows["dismissed"]).any()
    pc, pd = rows["p_click"].to_numpy(), rows["p_dismiss"].to_numpy()
    assert np.all(pc + pd <= 1.0)
    # calibration overall and per decile of each probability, device and position
    c, d = rows["clicked"].to_numpy(), rows["dismissed"].to_numpy()
    assert abs(_z(c, pc)) < 4 and abs(_z(d, pd)) < 4
    for obs, p in ((c, pc), (d, pd)):
        edges = np.quantile(p, np.linspace(0, 1, 11))
        bucket = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
        zs = [_z(obs[bucket == b], p[bucket == b]) for b in range(10) if (bucket == b).any()]
        assert max(abs(z) for z in zs) < 4.5, zs
    mob = rows["mobile"].to_numpy() == 1
    for dev in (mob, ~mob):
        for k in (0, 4, 9):
            sel = dev & (rows["position"].to_numpy() == k)
            assert abs(_z(c[sel], pc[sel])) < 4.5


def test_devices_have_their_own_position_bias(v2) -> None:
    _, _, world = v2
    k = np.arange(10)
    mobile, desktop = world.examination(k, np.ones(10)), world.examination(k, np.zeros(10))
    assert mobile[0] == desktop[0] == 1.0 and np.all(mobile[1:] < desktop[1:])
    np.testing.assert_allclose(mobile, (1 + k) ** -V2_CONFIG.mobile_position_eta)


def test_titles_carry_the_story_and_its_entities(v2) -> None:
    out, _, world = v2
    arts = Dataset(out).read("articles")
    names, _, _ = topic_entities(world.n_topics)
    story = world.article_story
    assert 0.5 < (story >= 0).mean() < 0.8  # story_share 0.65
    for j in np.flatnonzero(story >= 0)[:200]:
        s = int(story[j])
        name = story_name(int(world.story_topic[s]), int(world.story_subtopic[s]),
                          int(world.story_codeword[s]), int(world.story_noun[s]))
        row = arts.row(int(j), named=True)
        text = row["title"] + " " + row["abstract"]
        assert name in text
        ents = [names[e] for e in world.article_entities[j] if e >= 0]
        assert row["entities"] == ents and all(e.lower() in text.lower() for e in ents)
        assert world.article_entities[j, 0] == world.story_entities[s, 0]
    german = arts["language"] == "de"
    assert 0.1 < german.mean() < 0.3
    np.testing.assert_array_equal(german.to_numpy(), world.article_lang == 1)
    assert (arts.filter(german)["brand"] == "nordkurier").all()


def test_breaking_stories_burst(v2) -> None:
    _, _, world = v2
    breaking = np.flatnonzero(world.story_breaking)
    assert breaking.size > 0
    for s in breaking:
        arts = np.flatnonzero(world.article_story == s)
        since = world.article_published[arts] - world.story_start[s]
        assert np.all((since >= -1e-6) & (since <= V2_CONFIG.burst_hours * 3600 + 1e-6))
        t = world.story_start[s] + 600.0
        assert np.all(world.burst(arts, t) > 0.9)
    sizes = np.bincount(world.article_story[world.article_story >= 0],
                        minlength=world.n_stories)
    assert sizes[breaking].mean() > 2 * sizes[~world.story_breaking].mean()


def test_story_entity_and_language_terms_move_attraction(v2) -> None:
    _, _, world = v2
    c = world.config
    t = c.start_unix + 10 * 3600
    live = world.live_articles(t)
    users = np.arange(world.n_users)[:, None]
    logit = world.logit(users, live[None, :], t)
    follows = world.follows_story(users, world.article_story[live][None, :])
    matches = world.entity_matches(users, live[None, :])
    assert 0.02 < follows[:, world.article_story[live] >= 0].mean() < 0.5
    assert matches.max() >= 1
    # the logit differences are exactly the documented weights
    theta = world.user_theta[users, world.article_topic[live][None, :]].astype(float)
    lang = world.article_lang[live][None, :], world.user_lang[users]
    penalty = np.where((lang[0] == 1) & (lang[1] == 0), c.foreign_language_penalty,
                       np.where((lang[0] == 0) & (lang[1] == 1),
                                c.english_for_german_penalty, 0.0))
    expected = (c.click_bias + c.interest_weight * np.log1p(world.n_topics * theta)
                + c.quality_weight * world.article_quality[live][None, :]
                + c.story_weight * follows + c.entity_weight * np.minimum(matches, 2)
                + c.burst_weight * world.burst(live, t)[None, :] - penalty)
    np.testing.assert_allclose(logit, expected, rtol=0, atol=1e-12)


def test_followers_click_the_story_more_in_the_log(v2, shown) -> None:
    _, _, world = v2
    rows = shown
    u = rows["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
    a = rows["article_id"].str.slice(1).cast(pl.Int64).to_numpy()
    f = world.follows_story(u, world.article_story[a])
    c = rows["clicked"].to_numpy()
    assert c[f].mean() > 2 * c[~f & (world.article_story[a] >= 0)].mean()


def test_build_world_dispatches_and_keeps_v1_readers() -> None:
    small = dict(seed=0, n_users=500, days=1.0, articles_per_day=200)
    w1, w2 = build_world(SimulationConfig(**small)), build_world(SimulationConfig.v2(**small))
    assert type(w1) is World and isinstance(w2, WorldV2) and w2.n_stories > 10
    # same seed: the same readers' topic interests and activity in both worlds
    np.testing.assert_array_equal(w1.user_theta, w2.user_theta)
    np.testing.assert_array_equal(w1.user_activity, w2.user_activity)
    assert w2.n_articles == w1.n_articles


def test_cli_simulate_world_v2(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    run = subprocess.run([str(NEWSDESK), "simulate", "--seed", "1", "--users", "200",
                          "--days", "0.25", "--impressions-per-day", "4000", "--world", "v2",
                          "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["dismissals"] >= 0 and 0 < summary["mobile_share"] < 1
    assert json.loads((out / "simulation" / "config.json").read_text())["world"] == "v2"
    bad = subprocess.run([str(NEWSDESK), "simulate", "--users", "10", "--world", "v9",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "world" in (bad.stderr + bad.stdout)
