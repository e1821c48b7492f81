"""features.bulk_apply: a vectorised batch leaves the store in the state event-by-event writes
leave (warm_store against warm_store_sequential, on a simulated world)."""

from __future__ import annotations

import numpy as np
import pytest

from newsdesk.features.bulk_apply import EventBatch, apply_batch
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import (
    UNKNOWN,
    LogArrays,
    load_log,
    warm_store,
    warm_store_sequential,
)
from newsdesk.simulation import SimulationConfig, simulate_to_dataset

SIM = SimulationConfig(seed=11, n_users=150, days=2.0, articles_per_day=20,
                       impressions_per_day=1500, backlog_days=1.0, slate_size=8)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> LogArrays:
    out = tmp_path_factory.mktemp("bulk") / "ds"
    simulate_to_dataset(SIM, out)
    return load_log(out)


def _same_state(a: MemoryOnlineStore, b: MemoryOnlineStore, log: LogArrays, now: float) -> None:
    ids = [*(log.key_ids or [x.article_id for x in log.articles]), UNKNOWN]
    sa, sb = a.stats_matrix(ids, now), b.stats_matrix(ids, now)
    assert sa.shape == sb.shape
    np.testing.assert_allclose(sa, sb, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert sa[:, 3].sum() > 0 and sa[:, 2].sum() > 0  # impressions and clicks were written
    for user in log.events.user_ids:
        assert a.user_clicks(user) == b.user_clicks(user), user
        assert a.user_exposures(user) == b.user_exposures(user), user
    if a.max_user_exposures:
        assert sum(len(a.user_exposures(u)) for u in log.events.user_ids) > 0
    ta, tb = a.trending(20, now), b.trending(20, now)
    assert [i for i, _ in ta] == [i for i, _ in tb] and len(ta) == 20
    np.testing.assert_allclose([s for _, s in ta], [s for _, s in tb], rtol=1e-9)


def test_warm_store_equals_event_by_event(log: LogArrays) -> None:
    t0, t1 = log.time_range
    until = t0 + 0.7 * (t1 - t0)
    bulk, seq = (MemoryOnlineStore(half_life_hours=3.0, max_user_exposures=20)
                 for _ in range(2))
    warm_store(bulk, log, until=until)
    warm_store_sequential(seq, log, until=until)
    _same_state(bulk, seq, log, until)


def test_incremental_batches_equal_event_by_event(log: LogArrays) -> None:
    """Advancing in steps (the drift reference's way) ends where one pass does."""
    t0, t1 = log.time_range
    cuts = np.linspace(t0, t1 + 1.0, 6)[1:]
    bulk, seq = (MemoryOnlineStore(half_life_hours=6.0, max_user_exposures=20)
                 for _ in range(2))
    since = None
    for until in cuts:
        warm_store(bulk, log, until=float(until), since=since)
        since = float(until)
    warm_store_sequential(seq, log, until=float(cuts[-1]))
    _same_state(bulk, seq, log, float(cuts[-1]))


@pytest.mark.parametrize("small", [0, 1000])  # vectorised, and one by one
def test_user_list_cap_and_unknown_articles(small: int) -> None:
    """The last `cap` clicks, last written first (ties keep written order); an unknown key is
    counted under the unknown id; both write paths of apply_batch agree with the store."""
    store = MemoryOnlineStore(half_life_hours=1.0, max_user_clicks=3)
    ref = MemoryOnlineStore(half_life_hours=1.0, max_user_clicks=3)
    ids, users = ["a", "b", "c"], ["u0", "u1"]
    clicks = [(0, 0, 10.0), (0, 1, 10.0), (1, -1, 11.0), (0, 2, 12.0), (0, 0, 13.0)]
    imps = [(0, 5.0), (1, 5.0), (2, 9.0), (0, 12.0)]
    for k, t in imps:
        ref.record_impressions([ids[k]], t)
    for u, k, t in clicks:
        ref.record_clicks(users[u], [ids[k] if k >= 0 else "?"], t)
    apply_batch(store, EventBatch(
        ids=ids, users=users, imp_key=np.array([k for k, _ in imps]),
        imp_ts=np.array([t for _, t in imps]), click_user=np.array([u for u, _, _ in clicks]),
        click_key=np.array([k for _, k, _ in clicks]), click_ts=np.array([t for *_, t in clicks]),
        unknown_id="?"), small=small)
    assert [c.article_id for c in store.user_clicks("u0")] == ["a", "c", "b"]
    assert store.user_clicks("u0") == ref.user_clicks("u0")
    assert store.user_clicks("u1") == ref.user_clicks("u1")
    np.testing.assert_allclose(store.stats_matrix([*ids, "?"], 20.0),
                               ref.stats_matrix([*ids, "?"], 20.0), rtol=1e-12)
