"""The World: the documented click model, ids, traffic helpers and the save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.errors import ConfigError, DatasetError, InvalidInput
from newsdesk.simulation import SimulationConfig, World, build_world

CONFIG = SimulationConfig(seed=5, n_users=300, days=1.0, articles_per_day=200,
                          impressions_per_day=1000)
_WORLD = build_world(CONFIG)


@pytest.fixture(scope="module")
def world() -> World:
    return _WORLD


def test_click_probability_is_the_documented_formula(world: World) -> None:
    c = CONFIG
    u, a = 17, int(world.live_articles(c.start_unix + 3600)[0])
    t = c.start_unix + 3600.0
    theta = float(world.user_theta[u, world.article_topic[a]])
    age = t - world.article_published[a]
    expected_attr = (1 / (1 + np.exp(-(c.click_bias
                                       + c.interest_weight * np.log1p(c.n_topics * theta)
                                       + c.quality_weight * world.article_quality[a])))
                     * 2 ** (-age / world.article_half_life[a]))
    for k in (0, 3, 9):
        p = world.click_probability(u, a, t, k)
        assert float(p) == pytest.approx((1 + k) ** -c.position_eta * expected_attr, rel=1e-12)
    # ids and indices are interchangeable
    assert float(world.click_probability(f"u{u}", f"a{a}", t, 0)) == pytest.approx(
        float(world.click_probability(u, a, t, 0)), rel=0, abs=0)


def test_probabilities_are_bounded_and_zero_before_publication(world: World) -> None:
    users = np.arange(world.n_users)[:, None]
    arts = np.arange(world.n_articles)[None, :]
    t = CONFIG.start_unix + 12 * 3600
    p = world.click_probability(users, arts, t, 0)
    assert p.shape == (world.n_users, world.n_articles)
    assert np.all((p >= 0) & (p <= 1))
    unpublished = world.article_published > t
    assert unpublished.any() and np.all(p[:, unpublished] == 0)
    assert np.all(np.diff(world.examination(np.arange(10))) < 0)


def test_interest_drives_attraction(world: World) -> None:
    t = CONFIG.start_unix + 6 * 3600
    live = world.live_articles(t)
    users = np.arange(world.n_users)
    attr = world.attraction(users[:, None], live[None, :], t)
    theta = world.user_theta[users[:, None], world.article_topic[live][None, :]]
    assert attr[theta > 0.4].mean() > 3 * attr[theta < 0.02].mean()


def test_live_articles_are_published_and_not_expired(world: World) -> None:
    t = CONFIG.start_unix + 5000.0
    live = world.live_articles(t)
    assert live.size > 0
    assert np.all(world.article_published[live] <= t) and np.all(world.article_expires[live] > t)
    others = np.setdiff1d(np.arange(world.n_articles), live)
    assert np.all((world.article_published[others] > t) | (world.article_expires[others] <= t))


def test_respond_matches_probabilities_in_expectation(world: World) -> None:
    rng = np.random.default_rng(0)
    t = CONFIG.start_unix + 8 * 3600
    slate = world.live_articles(t)[:10]
    user = int(np.argmax(world.user_theta[:, world.article_topic[slate[0]]]))
    clicks = np.stack([world.respond(user, slate, t, rng) for _ in range(20_000)])
    assert clicks.shape == (20_000, slate.size) and clicks.dtype == bool
    p = world.click_probability(user, slate, t, np.arange(slate.size))
    z = (clicks.mean(0) - p) / np.sqrt(p * (1 - p) / clicks.shape[0])
    assert np.abs(z).max() < 5
    # batch form: one row per request
    batch = world.respond(np.array([1, 2, 3]), np.tile(slate, (3, 1)), np.full(3, t), rng)
    assert batch.shape == (3, slate.size)


def test_sample_requests_follow_the_traffic_model(world: World) -> None:
    rng = np.random.default_rng(1)
    t0 = CONFIG.start_unix
    times, users = world.sample_requests(t0, t0 + 86_400, rng)
    expected = world.expected_requests(t0, t0 + 86_400)
    assert expected == pytest.approx(CONFIG.impressions_per_day, rel=0.01)
    assert abs(times.size - expected) < 5 * np.sqrt(expected)
    assert np.all(np.diff(times) >= 0) and times.min() >= t0 and times.max() < t0 + 86_400
    assert users.min() >= 0 and users.max() < world.n_users
    # the evening peak (19 h) gets more traffic than the early morning
    hours = (times % 86_400) / 3600
    assert np.sum((hours > 17) & (hours < 21)) > 1.5 * np.sum((hours > 5) & (hours < 9))


def test_save_load_round_trip(world: World, tmp_path: Path) -> None:
    world.save(tmp_path)
    loaded = World.load(tmp_path)
    assert loaded.config == world.config
    rng = np.random.default_rng(2)
    u = rng.integers(0, world.n_users, 500)
    a = rng.integers(0, world.n_articles, 500)
    t = CONFIG.start_unix + rng.random(500) * 86_400
    k = rng.integers(0, 10, 500)
    np.testing.assert_array_equal(loaded.click_probability(u, a, t, k),
                                  world.click_probability(u, a, t, k))
    with pytest.raises(DatasetError, match="no simulated world"):
        World.load(tmp_path / "nowhere")


def test_bad_inputs_name_the_field(world: World) -> None:
    with pytest.raises(InvalidInput, match="users"):
        world.click_probability(world.n_users, 0, 0.0, 0)
    with pytest.raises(InvalidInput, match="articles"):
        world.click_probability(0, "x12", 0.0, 0)
    with pytest.raises(ConfigError, match="slate_size"):
        SimulationConfig(slate_size=0)
    with pytest.raises(ConfigError, match="policy_epsilon"):
        SimulationConfig(policy_epsilon=0.0)


def test_oracle_slate_beats_random_slates(world: World) -> None:
    rng = np.random.default_rng(4)
    t = CONFIG.start_unix + 10 * 3600
    live = world.live_articles(t)
    for user in range(20):
        best = world.oracle_slate(user, t, 10)
        assert np.all(np.isin(best, live)) and np.unique(best).size == 10
        best_value = world.expected_clicks(user, best, t)
        for _ in range(20):
            assert world.expected_clicks(user, rng.choice(live, 10, replace=False), t) \
                <= best_value + 1e-12


def test_load_refuses_a_world_left_behind_by_another_import(world: World,
                                                            tmp_path: Path) -> None:
    world.save(tmp_path)
    (tmp_path / "manifest.json").write_text('{"source": "mind"}')
    with pytest.raises(DatasetError, match="stale"):
        World.load(tmp_path)


@settings(max_examples=100, deadline=None)
@given(u=st.integers(0, 299), a=st.integers(0, 599), hours=st.floats(-48, 72),
       k=st.integers(0, 19))
def test_click_probability_invariants(u: int, a: int, hours: float, k: int) -> None:
    world = _WORLD
    t = CONFIG.start_unix + hours * 3600
    p = float(world.click_probability(u, a, t, k))
    assert 0.0 <= p <= 1.0
    # lower in the slate and later in time never makes a click more likely
    assert float(world.click_probability(u, a, t, k + 1)) <= p
    assert float(world.click_probability(u, a, t + 3600, k)) <= p or \
        t < world.article_published[a]

