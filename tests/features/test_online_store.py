"""OnlineStore contract tests: one suite, run against MemoryOnlineStore and RedisOnlineStore
(a real redis-server from the conftest fixture)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsdesk.data.schema import Impression, Interaction, InteractionType
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.online_store import ArticleStats, Click, OnlineStore
from newsdesk.features.redis_store import RedisOnlineStore

H = 3600.0  # the suite uses a half-life of one hour, so decay factors are powers of two

StoreFactory = Callable[..., OnlineStore]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """A factory of fresh, empty stores of one backend (closed at the end of the test)."""
    opened: list[OnlineStore] = []

    def factory(**options: object) -> OnlineStore:
        options.setdefault("half_life_hours", 1.0)
        options.setdefault("max_user_clicks", 5)
        if request.param == "memory":
            store: OnlineStore = MemoryOnlineStore(**options)  # type: ignore[arg-type]
        else:
            url = request.getfixturevalue("redis_server")
            options.pop("top_k", None)
            store = RedisOnlineStore(url, prefix=f"test-{uuid.uuid4().hex[:8]}:",
                                     **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        if isinstance(store, RedisOnlineStore):
            store.clear()
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> OnlineStore:
    return make_store()


def test_read_your_writes(store: OnlineStore) -> None:
    store.record_impressions(["a", "b", "a"], ts=100.0)
    store.record_clicks("u1", ["a"], ts=101.0)
    a, b = store.article_stats(["a", "b"], now=101.0)
    assert (a.impressions, a.clicks, b.impressions, b.clicks) == (2, 1, 1, 0)
    assert a.last_event_ts == 101.0 and b.last_event_ts == 100.0
    assert store.user_clicks("u1") == [Click("a", 101.0)]
    assert store.trending(5, now=101.0) == [("a", pytest.approx(1.0))]
    assert store.ping() is True


def test_decay_matches_hand_worked_values(store: OnlineStore) -> None:
    store.record_clicks("u", ["a"], ts=0.0)
    store.record_clicks("u", ["a"], ts=H)
    store.record_impressions(["a"] * 4, ts=0.0)
    (a,) = store.article_stats(["a"], now=2 * H)
    assert a.decayed_clicks == pytest.approx(0.25 + 0.5)  # 2h and 1h old at one-hour half-life
    assert a.decayed_impressions == pytest.approx(4 * 0.25)
    (a3,) = store.article_stats(["a"], now=3 * H + 1800)  # 3.5 h and 2.5 h old
    assert a3.decayed_clicks == pytest.approx(2 ** -3.5 + 2 ** -2.5)
    assert (a3.clicks, a3.impressions) == (2, 4)  # raw counts never decay


def test_late_events_add_their_own_decayed_weight(store: OnlineStore) -> None:
    store.record_clicks("u", ["a"], ts=2 * H)
    store.record_clicks("u", ["a"], ts=H)  # arrives late, one half-life older
    (a,) = store.article_stats(["a"], now=2 * H)
    assert a.decayed_clicks == pytest.approx(1.5)
    assert a.last_event_ts == 2 * H


def test_trending_order_and_candidates(store: OnlineStore) -> None:
    store.record_clicks("u1", ["a", "a", "a"], ts=0.0)
    store.record_clicks("u2", ["b", "b"], ts=H)
    store.record_clicks("u3", ["c"], ts=2 * H)
    store.record_impressions(["d"], ts=2 * H)  # shown, never clicked: not trending
    # at 2h: a = 3/4, b = 2/2 = 1, c = 1: b and c tie exactly and are ordered by id
    assert store.trending(10, now=2 * H) == [("b", pytest.approx(1.0)), ("c", pytest.approx(1.0)),
                                             ("a", pytest.approx(0.75))]
    assert [a for a, _ in store.trending(2, now=2 * H)] == ["b", "c"]
    # the order does not change as time passes; values halve every hour
    later = store.trending(3, now=4 * H)
    assert [a for a, _ in later] == ["b", "c", "a"]
    assert later[2][1] == pytest.approx(0.75 / 4)
    among = store.trending(5, now=2 * H, candidates=["a", "c", "d", "unknown"])
    assert among == [("c", pytest.approx(1.0)), ("a", pytest.approx(0.75))]
    assert store.trending(0, now=2 * H) == []


def test_user_clicks_are_capped_newest_first(store: OnlineStore) -> None:
    for i in range(8):
        store.record_clicks("u", [f"a{i}"], ts=float(i))
    store.record_clicks("u", ["x", "y"], ts=10.0)  # one call: y is the newest
    clicks = store.user_clicks("u")
    assert [c.article_id for c in clicks] == ["y", "x", "a7", "a6", "a5"]
    assert clicks[0].ts == 10.0
    assert [c.article_id for c in store.user_clicks("u", limit=2)] == ["y", "x"]
    assert store.user_clicks("other") == []


def test_user_reads_are_the_clicks_and_markers_read_one_by_one(store: OnlineStore) -> None:
    for i in range(5):
        store.record_clicks("reader", [f"a{i}"], ts=100.0 + i)
    store.write_marker("dismissed:reader", '[["a1", 101.0, null]]')
    names = ["dismissed:reader", "seed:reader"]
    clicks, values = store.user_reads("reader", 3, names)
    assert clicks == store.user_clicks("reader", limit=3) and len(clicks) == 3
    assert values == [store.read_marker(n) for n in names] == ['[["a1", 101.0, null]]', None]
    assert store.user_reads("nobody", 3, ["dismissed:nobody"]) == ([], [None])
    assert store.user_reads("reader", 0, [])[0] == []
    assert len(store.user_reads("reader", None, [])[0]) == 5


def test_unknown_ids_are_zeros(store: OnlineStore) -> None:
    store.record_clicks("u", ["a"], ts=0.0)
    stats = store.article_stats(["nope", "a", "nada"], now=0.0)
    assert stats[0] == ArticleStats() == stats[2]
    assert stats[1].clicks == 1
    assert store.article_stats([], now=0.0) == []


def test_record_events_batch(store: OnlineStore) -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    store.record_events([
        Impression(request_id="r1", user_id="u", timestamp=t, article_ids=["a", "b"]),
        Interaction(event_id="e1", type=InteractionType.CLICK, user_id="u", article_id="a",
                    timestamp=t),
        Interaction(event_id="e2", type=InteractionType.DWELL, user_id="u", article_id="a",
                    timestamp=t, dwell_seconds=3.0),  # dwell is not a click
    ])
    a, b = store.article_stats(["a", "b"], now=t.timestamp())
    assert (a.impressions, a.clicks, b.impressions, b.clicks) == (1, 1, 1, 0)
    assert store.user_clicks("u") == [Click("a", t.timestamp())]


def test_epoch_rebase_keeps_values_and_order(store: OnlineStore) -> None:
    """Clicks 600 half-lives apart force a re-base of the trending scores."""
    store.record_clicks("u", ["old"] * 4, 0.0)
    store.record_clicks("u", ["older"], 0.0)
    late = 600 * H
    store.record_clicks("u", ["new"], late)
    got = store.trending(5, late)
    assert [a for a, _ in got] == ["new", "old", "older"]
    assert got[0][1] == pytest.approx(1.0)
    assert got[1][1] == pytest.approx(4 * 2.0 ** -600)
    store.record_clicks("u", ["older"] * 5, late)  # later clicks still rank correctly
    assert [a for a, _ in store.trending(2, late)] == ["older", "new"]


clicks_strategy = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 20)), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(clicks=clicks_strategy, n=st.integers(1, 8))
def test_trending_equals_brute_force(make_store: StoreFactory, clicks: list[tuple[str, int]],
                                     n: int) -> None:
    """Trending == sorting every article by decayed clicks (memory: with a top-3 index)."""
    store = make_store(top_k=3)
    for article_id, hour in clicks:
        store.record_clicks("u", [article_id], ts=hour * 600.0)
    now = 20 * 600.0
    ids = sorted({a for a, _ in clicks})
    stats = store.article_stats(ids, now=now)
    expected = sorted(((a, s.decayed_clicks) for a, s in zip(ids, stats, strict=True)),
                      key=lambda kv: (-kv[1], kv[0]))[:n]
    got = store.trending(n, now=now)
    # values position by position; ids checked through their own value, because articles whose
    # values tie up to float rounding may legitimately come in either order
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-9)
    value_of = {a: s.decayed_clicks for a, s in zip(ids, stats, strict=True)}
    assert all(value_of[a] == pytest.approx(v, rel=1e-9) for a, v in got)
    assert len({a for a, _ in got}) == len(got)


def test_stats_matrix_equals_article_stats(store: OnlineStore) -> None:
    # the Redis backend computes the matrix in one Lua call: it must agree with article_stats
    store.record_impressions(["a", "b", "a", "c"], ts=100.0)
    store.record_clicks("u1", ["a", "c"], ts=100.0 + H)
    store.record_impressions(["b"], ts=100.0 + 3 * H)
    ids = ["a", "b", "c", "never-seen", "a"]
    now = 100.0 + 4 * H
    stats = store.article_stats(ids, now)
    expected = [[s.decayed_clicks, s.decayed_impressions, s.clicks, s.impressions]
                for s in stats]
    matrix = store.stats_matrix(ids, now)
    assert matrix.shape == (5, 4)
    assert matrix == pytest.approx(np.array(expected), rel=1e-12)
    assert matrix[0] == pytest.approx(np.array([2 ** -3, 2 * 2 ** -4, 1, 2]), rel=1e-12)
    assert store.stats_matrix([], now).shape == (0, 4)
