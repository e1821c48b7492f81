"""Personalised CTR from id-only logs: similar readers' clicks move the score, point in time."""

from __future__ import annotations

import numpy as np
import pytest

from newsdesk.evaluation.mind_protocol import LabeledImpression
from newsdesk.evaluation.replay import ClickEvent, ImpressionEvent, replay_events
from newsdesk.models.base import RequestContext
from newsdesk.models.baselines import StreamingCTRRecommender
from newsdesk.models.log_signals import LOG_FEATURES, LogSignalStore
from newsdesk.models.personal_ctr import PersonalCTRIndex, PersonalCTRRecommender

H = 3600.0
COL = {name: i for i, name in enumerate(LOG_FEATURES)}


def _world() -> PersonalCTRIndex:
    """Two reader groups by history (sports: s1..s3, politics: p1..p3); each group was shown
    both fresh articles "x" and "y" and clicked only its own group's one."""
    idx = PersonalCTRIndex(half_life_hours=24.0, strength=0.1, ctr_strength=0.2)
    for i in range(4):
        idx.record_clicks(f"sport{i}", ["s1", "s2", "s3"], 0.0)
        idx.record_clicks(f"pol{i}", ["p1", "p2", "p3"], 0.0)
    idx.record_clicks("other", ["s1", "p1"], 0.0)  # keeps idf of the history ids above 0
    for i in range(4):
        idx.record_exposure(f"sport{i}", ["x", "y"], H)
        idx.record_clicks(f"sport{i}", ["x"], H + 10)
        idx.record_exposure(f"pol{i}", ["x", "y"], H)
        idx.record_clicks(f"pol{i}", ["y"], H + 10)
    return idx


def test_similar_readers_clicks_decide_the_order_and_the_global_ctr_is_the_prior() -> None:
    idx = _world()
    base = np.array([0.5, 0.5])  # the global CTR ties x and y
    idx.record_clicks("new_sport_fan", ["s1", "s2"], 0.0)
    idx.record_clicks("new_pol_fan", ["p2", "p3"], 0.0)
    s = idx.ctr("new_sport_fan", ["x", "y"], 2 * H, base)
    p = idx.ctr("new_pol_fan", ["x", "y"], 2 * H, base)
    assert s[0] > 0.8 > 0.2 > s[1]
    assert p[1] > 0.8 > 0.2 > p[0]
    # a reader with no overlap with anyone gets exactly the prior
    idx.record_clicks("stranger", ["z9"], 0.0)
    assert idx.ctr("stranger", ["x", "y"], 2 * H, base) == pytest.approx(base)
    assert idx.ctr("nobody", ["x", "y"], 2 * H, base) == pytest.approx(base)


def test_it_is_point_in_time_and_decays() -> None:
    idx = _world()
    idx.record_clicks("fan", ["s1", "s2"], 0.0)
    base = np.array([0.5, 0.5])
    # asked at the exposures' own time: nothing of them is known yet
    assert idx.ctr("fan", ["x", "y"], H, base) == pytest.approx(base)
    soon = idx.weights("fan", ["x"], 2 * H)[:, 0]
    late = idx.weights("fan", ["x"], 2 * H + 24 * H)[:, 0]
    assert late == pytest.approx(soon / 2)  # one half-life later, every sum halves
    assert soon[4] > 0 and soon[3] == pytest.approx(soon[4])  # all similar readers clicked x
    assert soon[0] == pytest.approx(soon[1] / 2)  # globally: 4 of 8 exposures clicked
    # a write between two identical asks is seen (the last request's sums are memoised)
    idx.record_exposure("late", ["x"], 1.5 * H)
    assert idx.weights("fan", ["x"], 2 * H)[1, 0] > soon[1]


def test_shown_without_a_click_lowers_the_article_for_that_reader() -> None:
    idx = PersonalCTRIndex(half_life_hours=24.0, strength=1.0, ctr_strength=1.0)
    idx.record_clicks("u", ["h1", "h2"], 0.0)
    idx.record_clicks("v", ["h3"], 0.0)
    for t in (1, 2, 3):
        idx.record_exposure("u", ["a", "b"], t * H)
    idx.record_clicks("u", ["b"], 3 * H + 5)
    assert idx.times_shown("u", ["a", "b"], 4 * H).tolist() == [3.0, 2.0]
    s = idx.ctr("u", ["a", "b"], 4 * H, np.array([0.1, 0.1]))
    assert s[0] < 0.1 < s[1]


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="strength"):
        PersonalCTRIndex(strength=0.0)
    with pytest.raises(ValueError, match="half_life_hours"):
        PersonalCTRIndex(half_life_hours=-1.0)
    with pytest.raises(ValueError, match="size_exponent"):
        PersonalCTRIndex(size_exponent=-0.5)


def test_lift_weighs_a_miss_by_the_slate_it_was_in() -> None:
    """Both articles got 1 click in 4 exposures, but "big" missed in slates of 50 articles
    (each expecting 1/50 of a click) and "small" in slates of 2: "big" did far better than
    chance, "small" no better; the plain CTR ties them."""
    idx = PersonalCTRIndex(half_life_hours=24.0)
    fillers = [f"f{i}" for i in range(48)]
    for i in range(4):
        idx.record_exposure(f"b{i}", ["big", "other", *fillers], H)
        idx.record_clicks(f"b{i}", ["big" if i == 0 else "other"], H)
        idx.record_exposure(f"s{i}", ["small", "rival"], H)
        idx.record_clicks(f"s{i}", ["small" if i == 0 else "rival"], H)
    w = idx.weights("nobody", ["big", "small"], H + 1)  # one second later: decay ~ 1
    assert w[0] == pytest.approx([1.0, 1.0], rel=1e-3)  # same clicks
    assert w[1] == pytest.approx([4.0, 4.0], rel=1e-3)  # and exposures: the same plain CTR
    assert w[2] == pytest.approx([4 / 50, 4 / 2], rel=1e-3)  # expected clicks
    lift = idx.lift("nobody", ["big", "small"], H + 1)  # no profile: the global lift
    assert lift[0] > 1.5 > 1.0 > lift[1]


def test_personal_lift_follows_similar_readers() -> None:
    idx = _world()
    idx.record_clicks("new_sport_fan", ["s1", "s2"], 0.0)
    lift = idx.lift("new_sport_fan", ["x", "y"], 2 * H)
    assert lift[0] > 1.5 > 0.5 > lift[1]
    # the global lift ties x and y (each clicked by half its readers in the same slates)
    w = idx.weights("", ["x", "y"], 2 * H)
    assert w[0, 0] == w[0, 1] and w[2, 0] == pytest.approx(w[2, 1])


def test_replay_tells_the_store_who_saw_what_and_the_recommender_ranks_by_it() -> None:
    store = LogSignalStore(half_life_hours=24.0, personal={"ctr_strength": 1.0})
    events: list = [ClickEvent(0.0, f"r{i}", ("h1", "h2")) for i in range(3)]
    events.append(ClickEvent(0.0, "q", ("h9",)))
    for i in range(3):  # three similar readers see a and b, all click b
        imp = LabeledImpression(impression_id=f"i{i}", user_id=f"r{i}", ts=H * (i + 1),
                                article_ids=("a", "b"), labels=(0, 1))
        events.append(ImpressionEvent(imp.ts, imp))
        events.append(ClickEvent(imp.ts + 1, f"r{i}", ("b",)))
    events.append(ClickEvent(0.0, "me", ("h1",)))
    events.sort(key=lambda e: e.ts)
    replay_events(events, {}, store)
    assert len(store.personal.exposures["a"]) == 3
    rec = PersonalCTRRecommender(store, "ctr")
    ctx = RequestContext(user_id="me", now=10 * H)
    s = rec.score(ctx, ["a", "b"])
    assert s[1] > s[0]
    # the personal gap is wider than the global CTR's for this similar reader
    glob = StreamingCTRRecommender(store).score(ctx, ["a", "b"])
    assert s[1] - s[0] > glob[1] - glob[0]
    x = store.features("me", ["a", "b"], 10 * H)
    assert x[1, COL["personal_lift_log"]] > x[0, COL["personal_lift_log"]]
    assert x[1, COL["global_lift_log"]] > x[0, COL["global_lift_log"]]
    assert x[:, COL["reader_shown"]].tolist() == [0.0, 0.0]
    lift = PersonalCTRRecommender(store, "lift").score(ctx, ["a", "b"])
    assert lift[1] > lift[0]
    with pytest.raises(ValueError, match="mode"):
        PersonalCTRRecommender(store, "nope")
