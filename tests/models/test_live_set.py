"""The cached live set: always exactly `catalog.live_indices(now, max_age_hours)`, one object
(with its derived arrays) while neither the catalog nor a publish/expiry/age boundary changes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.data.schema import Article
from newsdesk.models.candidates.live import LiveSets
from newsdesk.models.catalog import ArticleCatalog

T0 = 1_800_000_000.0
DIM = 4


def _catalog(spec: list[tuple[int, int | None]]) -> ArticleCatalog:
    """Articles published at T0 + p seconds, expiring after e more seconds (None: never)."""
    arts = [Article(article_id=f"a{i}", title="t",
                    published_at=datetime.fromtimestamp(T0 + p, UTC),
                    expires_at=None if e is None else datetime.fromtimestamp(T0 + p + e, UTC))
            for i, (p, e) in enumerate(spec)]
    cat = ArticleCatalog(DIM)
    cat.add(arts, np.ones((len(arts), DIM), np.float32))
    return cat


def _boundaries(cat: ArticleCatalog, max_age_h: float | None) -> list[float]:
    """Every time at which some article enters or leaves, and the instants around it."""
    n = cat.size
    edges = list(cat.published[:n]) + [e for e in cat.expires[:n] if np.isfinite(e)]
    if max_age_h is not None:
        edges += [p + max_age_h * 3600.0 for p in cat.published[:n]]
    return sorted({t + d for t in edges for d in (-1.0, -1e-3, 0.0, 1e-6, 1e-3, 1.0)})


@settings(max_examples=40, deadline=None)
@given(spec=st.lists(st.tuples(st.integers(-400_000, 400_000),
                               st.one_of(st.none(), st.integers(0, 200_000))),
                     min_size=1, max_size=25),
       max_age_h=st.one_of(st.none(), st.sampled_from([1.0, 24.0, 72.0])),
       extra=st.lists(st.floats(-500_000, 500_000), max_size=10))
def test_live_set_equals_live_indices_at_every_time(spec: list[tuple[int, int | None]],
                                                    max_age_h: float | None,
                                                    extra: list[float]) -> None:
    cat = _catalog(spec)
    sets = LiveSets(cat, max_age_h)
    times = _boundaries(cat, max_age_h) + [T0 + x for x in extra]
    for now in sorted(times) + sorted(times, reverse=True)[:20]:  # forward, then back
        got = sets.at(now)
        np.testing.assert_array_equal(got.indices, cat.live_indices(now, max_age_h))
        assert got.covers(cat.version, now)  # the interval it claims contains the query


def test_same_object_within_the_interval_and_new_after_changes() -> None:
    cat = _catalog([(0, None), (100, 50), (1000, None)])
    sets = LiveSets(cat, max_age_hours=None)
    a = sets.at(T0 + 10)
    assert a.indices.tolist() == [0]
    assert sets.at(T0 + 50) is a  # nothing happens between 10 s and 100 s
    calls = []
    built = a.derived("x", lambda ix: calls.append(1) or ix * 2)
    assert a.derived("x", lambda ix: calls.append(1) or ix * 3) is built and calls == [1]
    b = sets.at(T0 + 120)  # article 1 was published at 100 s
    assert b is not a and b.indices.tolist() == [0, 1]
    assert sets.at(T0 + 160).indices.tolist() == [0]  # and expired at 150 s
    c = sets.at(T0 + 170)
    cat.remove("a0")  # a catalog change (version bump) invalidates at once
    d = sets.at(T0 + 170)
    assert d is not c and d.indices.tolist() == []
    assert not d.indices.flags.writeable  # shared by every request: nobody may write into it


@settings(max_examples=40, deadline=None)
@given(spec=st.lists(st.tuples(st.integers(-400_000, 400_000),
                               st.one_of(st.none(), st.integers(0, 200_000))),
                     min_size=1, max_size=25),
       max_age_h=st.one_of(st.none(), st.sampled_from([1.0, 24.0, 72.0])),
       lookahead=st.sampled_from([0.5, 5.0, 1e6]))
def test_sets_prepared_ahead_are_still_exactly_the_live_indices(
        spec: list[tuple[int, int | None]], max_age_h: float | None, lookahead: float) -> None:
    # serving's background thread prepares the next set before each boundary: whatever it
    # prepared, `at` hands out exactly the live indices
    cat = _catalog(spec)
    sets = LiveSets(cat, max_age_h)
    for now in _boundaries(cat, max_age_h):
        sets.prepare(now - 0.25, lookahead)
        got = sets.at(now)
        np.testing.assert_array_equal(got.indices, cat.live_indices(now, max_age_h))


def test_the_set_prepared_ahead_carries_the_derived_arrays() -> None:
    cat = _catalog([(0, None), (100, 50), (1000, None)])
    sets = LiveSets(cat, max_age_hours=None)
    calls: list[int] = []

    def build(ix: np.ndarray) -> int:
        calls.append(len(ix))
        return len(ix)

    first = sets.at(T0 + 120)  # a0, a1 (a1 expires at T0 + 150)
    assert first.derived("n", build) == 2
    assert not sets.prepare(T0 + 120, lookahead_s=10)  # the boundary is 30 s away
    assert sets.prepare(T0 + 145, lookahead_s=10)
    assert calls == [2, 1]  # built ahead, off the request path
    nxt = sets.at(T0 + 151)
    assert nxt is not first and nxt.indices.tolist() == [0]
    assert nxt.derived("n", build) == 1 and calls == [2, 1]  # no rebuild on the request
    cat.add([Article(article_id="new", title="t", published_at=datetime.fromtimestamp(T0, UTC))],
            np.ones((1, DIM), np.float32))
    assert not sets.prepare(T0 + 990, lookahead_s=100)  # a catalog change: not ahead
    assert sets.at(T0 + 160).indices.tolist() == [0, 3]
