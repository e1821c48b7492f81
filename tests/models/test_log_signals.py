"""Log-only ranking signals: id-keyed co-clicks, first-seen age, fast CTR, the logistic fit."""

from __future__ import annotations

import numpy as np
import pytest

from newsdesk.models.base import RequestContext
from newsdesk.models.log_signals import (
    LOG_FEATURES,
    LogSignalRecommender,
    LogSignalStore,
    fit_logistic,
)

H = 3600.0
COL = {name: i for i, name in enumerate(LOG_FEATURES)}


def test_coclicks_come_from_histories_and_clicks_keyed_by_id() -> None:
    store = LogSignalStore(half_life_hours=24.0)
    store.record_clicks("u1", ["n1", "n2", "n3"], 0.0)  # a seeded history
    store.record_clicks("u2", ["n1"], H)
    store.record_clicks("u2", ["n2"], 2 * H)  # a live click after n1
    assert store.co["n1"]["n2"] == 2.0 and store.co["n2"]["n1"] == 2.0
    assert store.co["n3"]["n1"] == 1.0
    assert "n3" not in store.co["n3"]  # no self pairs
    # a reader who clicked n1 gets co-click signal on n2, not on an unrelated id
    store.record_clicks("u3", ["n1"], 3 * H)
    x = store.features("u3", ["n2", "zz"], 4 * H)
    assert x[0, COL["log_coclick"]] == pytest.approx(np.log1p(2.0))
    assert x[1, COL["log_coclick"]] == 0.0
    # a reader without clicks gets none
    assert store.features("nobody", ["n2"], 4 * H)[0, COL["log_coclick"]] == 0.0


def test_age_since_first_seen_and_never_seen_are_point_in_time() -> None:
    store = LogSignalStore(half_life_hours=24.0)
    store.record_impressions(["a"], 10 * H)
    x = store.features("u", ["a", "b"], 12 * H)
    assert x[0, COL["log_age_hours"]] == pytest.approx(np.log1p(2.0))
    assert x[0, COL["never_seen"]] == 0.0
    assert x[1, COL["never_seen"]] == 1.0
    # asked at a time before the first sighting: it was not seen yet
    assert store.features("u", ["a"], 9 * H)[0, COL["never_seen"]] == 1.0


def test_fast_ctr_reacts_before_the_slow_one() -> None:
    store = LogSignalStore(half_life_hours=24.0, fast_half_life_hours=1.0)
    for t in range(20):  # 20 hours of impressions without clicks
        store.record_impressions(["a"] * 10, t * H)
    for i in range(10):  # then a burst of clicks
        store.record_impressions(["a"], 20 * H + i)
        store.record_clicks(f"u{i}", ["a"], 20 * H + i + 1)
    x = store.features("v", ["a"], 20 * H + 60)
    assert x[0, COL["ctr_trend"]] > 1.0  # fast logit well above the slow one


def test_fit_logistic_recovers_the_signal_and_the_recommender_ranks_by_it() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2.0 * x[:, 0])))).astype(float)
    w, mu, sd = fit_logistic(x, y, l2=1.0)
    assert w[0] > 1.5 and abs(w[1]) < 0.2
    store = LogSignalStore(half_life_hours=24.0)
    for _ in range(50):
        store.record_impressions(["hot", "cold"], 0.0)
    store.record_clicks("u", ["hot"] * 10, 1.0)
    fitted = fit_logistic(np.array([[0.0], [1.0], [0.0], [1.0]]), np.array([0, 1, 0, 1.0]))
    rec = LogSignalRecommender(store, ["ctr_logit"], fitted)
    s = rec.score(RequestContext(user_id="v", now=2.0, surface="front_page", k=2),
                  ["cold", "hot"])
    assert s[1] > s[0]
    with pytest.raises(ValueError, match="unknown name"):
        LogSignalRecommender(store, ["nope"], fitted)
