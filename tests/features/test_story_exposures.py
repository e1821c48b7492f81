"""Per-reader exposure lists and the `story_exposures` feature (issue 14, world v2).

The store keeps each reader's newest shown articles (both backends, the memory store's
snapshot, erasure); the training replay must give, for a query at time t, exactly the list a
store fed with every event before t holds; the feature counts the exposures within
`story_sim` of the candidate, the same on the serving (one user) and training (batch) paths;
a bundle that uses it refuses a store that keeps too few exposures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from newsdesk.data.schema import Impression, Interaction, InteractionType
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.online_store import Click, OnlineStore
from newsdesk.features.ranking_features import FEATURE_NAMES, FeatureBuilder
from newsdesk.features.redis_store import RedisOnlineStore
from newsdesk.features.replay import QueryRows, user_exposure_lists
from newsdesk.features.training_log import load_log, warm_store, warm_store_sequential
from newsdesk.simulation import SimulationConfig, simulate_to_dataset
from tests.features.test_story_features import NOW, _catalog, _inputs

COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


def _impression(user: str, ids: list[str], ts: float, rid: str = "r") -> Impression:
    return Impression(request_id=rid, user_id=user, article_ids=ids,
                      timestamp=datetime.fromtimestamp(ts, UTC))


def _contract(store: OnlineStore) -> None:
    store.record_events([
        _impression("u", ["a", "b", "c"], 100.0, "r1"),
        Interaction(event_id="e1", user_id="u", article_id="b", type=InteractionType.CLICK,
                    timestamp=datetime.fromtimestamp(101.0, UTC), request_id="r1"),
        _impression("u", ["d", "e"], 200.0, "r2"),
        _impression("v", ["a"], 150.0, "r3"),
    ])
    # newest first, a slate's last position first; capped at max_user_exposures (4)
    assert store.user_exposures("u") == [Click("e", 200.0), Click("d", 200.0),
                                         Click("c", 100.0), Click("b", 100.0)]
    assert store.user_exposures("u", limit=2) == [Click("e", 200.0), Click("d", 200.0)]
    assert store.user_exposures("v") == [Click("a", 150.0)]
    assert store.user_exposures("nobody") == []
    assert store.user_clicks("u") == [Click("b", 101.0)]  # clicks are still their own list
    # the request's one round trip: clicks, markers and exposures together
    store.write_marker("m:u", "x")
    assert store.user_reads_with_exposures("u", 5, ["m:u", "m:none"], 2) == (
        [Click("b", 101.0)], ["x", None], [Click("e", 200.0), Click("d", 200.0)])
    assert store.user_reads_with_exposures("u", 5, [], 0)[2] == []
    # bulk merge by time, whatever the store holds
    store.merge_user_exposures([("v", [Click("x", 300.0), Click("y", 50.0)])])
    assert store.user_exposures("v") == [Click("x", 300.0), Click("a", 150.0),
                                         Click("y", 50.0)]
    assert store.forget_user("u") is True
    assert store.user_exposures("u") == [] and store.user_clicks("u") == []


def test_memory_store_keeps_exposures(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = MemoryOnlineStore(max_user_exposures=4, persist_path=path)
    _contract(store)
    store.close()
    back = MemoryOnlineStore(max_user_exposures=4, persist_path=path)  # the snapshot keeps them
    assert back.user_exposures("v") == [Click("x", 300.0), Click("a", 150.0), Click("y", 50.0)]
    back.close()
    none = MemoryOnlineStore()  # the default keeps none: no cost where no bundle needs them
    none.record_events([_impression("u", ["a"], 1.0)])
    assert none.user_exposures("u") == [] and none.max_user_exposures == 0


@pytest.mark.redis
def test_redis_store_keeps_exposures(redis_server: str) -> None:
    store = RedisOnlineStore(redis_server, prefix="exposures-test:", max_user_exposures=4)
    try:
        store.clear()
        _contract(store)
        store.record_exposures("w", ["p", "q"], 5.0)
        assert store.user_exposures("w") == [Click("q", 5.0), Click("p", 5.0)]
    finally:
        store.clear()
        store.close()


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - LogArrays
    out = tmp_path_factory.mktemp("exposures") / "ds"
    simulate_to_dataset(SimulationConfig(seed=5, n_users=120, days=1.5, articles_per_day=20,
                                         impressions_per_day=1500, backlog_days=1.0,
                                         slate_size=6), out)
    return load_log(out)


@pytest.mark.parametrize("bulk", [False, True])
def test_replay_gives_what_the_store_holds(sim_log, bulk: bool) -> None:  # noqa: ANN001
    """For every reader, at a time t: the replay's exposure list is the store's after every
    event strictly before t, event by event and through the vectorised bulk path."""
    log = sim_log
    t0, t1 = log.time_range
    t = t0 + 0.6 * (t1 - t0)
    m = 15
    store = MemoryOnlineStore(max_user_exposures=m)
    (warm_store if bulk else warm_store_sequential)(store, log, until=t)
    users = np.arange(len(log.events.user_ids))
    queries = QueryRows(query_user=users, query_ts=np.full(len(users), t),
                        row_query=np.zeros(0, np.int64), row_article=np.zeros(0, np.int64),
                        row_position=np.zeros(0))
    replayed = user_exposure_lists(log.events, queries, m)
    index = {a.article_id: i for i, a in enumerate(log.articles)}
    n_full = 0
    for u, user in enumerate(log.events.user_ids):
        held = [index.get(c.article_id, -1) for c in store.user_exposures(user)]
        row = replayed[u]
        assert row[: len(held)].tolist() == held, user
        assert (row[len(held):] == -1).all(), user
        n_full += len(held) == m
    assert n_full > 10  # many readers' lists are full: the cap and the order are exercised


def test_story_exposures_counts_the_story_shown() -> None:
    cat = _catalog()  # 0, 1, 2 one story; 3 another topic; 4 German; 5 alone
    b = FeatureBuilder(sim_clicks=3, story_sim=0.9, recent_exposures=4)
    inputs = _inputs([[3], [3]], [[1.0], [1.0]], [(0, 0), (0, 3), (0, 5), (1, 2), (1, 4)])
    # reader 0 was shown 1, 2, 3 and 1 again (and more, beyond the window of 4); reader 1 none
    inputs.exposure_idx = np.array([[1, 2, 3, 1, 0, 0], [-1] * 6], np.int64)
    x = b.build(inputs, cat)
    got = np.expm1(x[:, COL["story_exposures"]]).round(6).tolist()
    assert got == [3.0, 1.0, 0.0, 0.0, 0.0]
    # the serving path (one reader at a time) gives the same
    for q in (0, 1):
        rows = np.flatnonzero(inputs.row_query == q)
        one = _inputs([[3]], [[1.0]], [(0, int(a)) for a in inputs.row_article[rows]])
        one.exposure_idx = inputs.exposure_idx[q:q + 1]
        np.testing.assert_allclose(b.build(one, cat)[:, COL["story_exposures"]],
                                   x[rows, COL["story_exposures"]], rtol=1e-6)
    # not read (None): 0; disabled: missing for the ranker, and not wanted from the store
    inputs.exposure_idx = None
    assert (b.build(inputs, cat)[:, COL["story_exposures"]] == 0).all()
    off = FeatureBuilder(disabled=["story_exposures"])
    assert not off.wants_exposures and b.wants_exposures
    assert np.isnan(off.build(inputs, cat)[:, COL["story_exposures"]]).all()


def test_a_bundle_says_how_many_exposures_its_store_must_keep() -> None:
    from newsdesk.models.bundle import exposures_needed

    schema = list(FEATURE_NAMES)
    on = {"feature_schema": schema,
          "config": {"features": {"disabled": [], "recent_exposures": 80}}}
    assert exposures_needed(on) == 80
    off = {"feature_schema": schema,
           "config": {"features": {"disabled": ["story_exposures"], "recent_exposures": 80}}}
    assert exposures_needed(off) == 0
    older = {"feature_schema": schema[:-1], "config": {"features": {"disabled": []}}}
    assert exposures_needed(older) == 0  # trained before the feature existed


def test_the_serving_view_reads_the_exposures_only_when_the_ranker_uses_them() -> None:
    from newsdesk.models.candidates.base import Workspace

    cat = _catalog()
    store = MemoryOnlineStore(max_user_exposures=10)
    store.record_exposures("u", ["a1", "a3", "not-in-catalog"], NOW - 60.0)
    view = Workspace(cat, store, FeatureBuilder(recent_exposures=5), max_age_hours=None).view(
        "u", NOW)
    assert view.exposure_idx is not None
    assert view.exposure_idx.tolist() == [-1, 3, 1, -1, -1]  # newest first, padded
    off = Workspace(cat, store, FeatureBuilder(disabled=["story_exposures"]),
                    max_age_hours=None).view("u", NOW)
    assert off.exposure_idx is None
