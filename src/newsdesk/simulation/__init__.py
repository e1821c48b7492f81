"""Synthetic news traffic with a KNOWN ground truth (tests, scale benchmarks, experiments).

Write a dataset (read like any imported one) plus the world that generated it::

    from newsdesk.simulation import SimulationConfig, simulate_to_dataset, World
    summary = simulate_to_dataset(SimulationConfig(seed=1, n_users=5_000, days=2), "data/sim")
    world = World.load("data/sim")            # data/sim/simulation/{world.npz, config.json}

Ids: user index i <-> "u{i}", article index j <-> "a{j}" (publication order); every World
method accepts either, and broadcasts arrays numpy-style. Times are unix seconds.

The true click model (docs/simulator.md, `newsdesk.simulation.world`)::

    p = world.click_probability(users, articles, t, positions)   # exam(pos) * attraction
    s = world.attraction(users, articles, t)                     # oracle ranking score

Serve a slate to a user at time t and get clicks back (simulated A/B tests)::

    rng = np.random.default_rng(7)
    times, users = world.sample_requests(t0, t1, rng)    # traffic model: diurnal x activity
    live = world.live_articles(t)                        # candidates at t (published..expires)
    clicked = world.respond(user, slate, t, rng)         # bool mask like `slate` (S,) / (R, S)
    dwell = world.sample_dwell(user, slate[clicked], rng)
    world.expected_clicks(user, slate, t)               # exact expectation, no sampling
    world.oracle_slate(user, t, slate_size)             # the expected-click-optimal slate

World v2 (`SimulationConfig.v2(...)`, `newsdesk simulate --world v2`; `world_v2.py`) adds
stories, named entities, breaking-news bursts, German articles and readers, devices and
dismissals; `World.load` returns a `WorldV2` for it. v1 stays the default, byte-identical.

Logged propensities (impressions.propensities) are the exact marginal probabilities that the
logging policy put the article in the slate; positions are uniformly shuffled, so
P(article at position k) = propensity / len(slate). See `newsdesk.simulation.policy`.
"""

from newsdesk.simulation.config import SimulationConfig
from newsdesk.simulation.policy import inclusion_probabilities, systematic_sample
from newsdesk.simulation.population import articles_table, build_world, histories_table
from newsdesk.simulation.traffic import TrafficSimulator, WindowLog
from newsdesk.simulation.world import World
from newsdesk.simulation.writer import simulate_to_dataset

__all__ = [
    "SimulationConfig",
    "TrafficSimulator",
    "WindowLog",
    "World",
    "articles_table",
    "build_world",
    "histories_table",
    "inclusion_probabilities",
    "simulate_to_dataset",
    "systematic_sample",
]
