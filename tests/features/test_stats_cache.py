"""The per-process article-statistics cache in front of a shared store."""

from __future__ import annotations

import pytest

from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.stats_cache import StatsCachingStore

H = 3600.0


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_cached_rows_decay_exactly_and_expire() -> None:
    inner = MemoryOnlineStore(half_life_hours=1.0)
    clock = Clock()
    cache = StatsCachingStore(inner, ttl_s=1.0, serve_stale_s=0.0, monotonic=clock)
    inner.record_impressions(["a", "b"], ts=0.0)
    inner.record_clicks("u", ["a"], ts=0.0)
    first = cache.stats_matrix(["a", "b"], now=H)
    assert first == pytest.approx(inner.stats_matrix(["a", "b"], H))
    assert (cache.hits, cache.misses) == (0, 2)

    # a cached row read later is decayed to the read time: equal to the store's own answer
    later = cache.stats_matrix(["a", "b"], now=3 * H)
    assert (cache.hits, cache.misses) == (2, 2)
    assert later == pytest.approx(inner.stats_matrix(["a", "b"], 3 * H))

    # another process's click is not seen until the row expires
    inner.record_clicks("other", ["b"], ts=3 * H)
    assert cache.stats_matrix(["b"], now=3 * H)[0, 2] == 0
    clock.t = 1.5
    assert cache.stats_matrix(["b"], now=3 * H)[0, 2] == 1


def test_user_state_and_writes_are_never_cached() -> None:
    inner = MemoryOnlineStore(half_life_hours=1.0)
    cache = StatsCachingStore(inner, ttl_s=60.0)
    cache.record_clicks("u", ["a"], ts=10.0)
    assert [c.article_id for c in cache.user_clicks("u")] == ["a"]
    cache.record_clicks("u", ["b"], ts=11.0)
    assert [c.article_id for c in cache.user_clicks("u")] == ["b", "a"]
    assert cache.trending(1, now=11.0, candidates=["a"])[0][0] == "a"  # never cached


def test_trending_is_cached_and_decayed_like_the_store() -> None:
    inner = MemoryOnlineStore(half_life_hours=1.0)
    clock = Clock()
    cache = StatsCachingStore(inner, ttl_s=1.0, monotonic=clock)
    inner.record_clicks("u", ["a", "a", "b"], ts=0.0)
    assert [a for a, _ in cache.trending(2, now=0.0)] == ["a", "b"]
    later = cache.trending(2, now=2 * H)
    assert later == [(a, pytest.approx(v)) for a, v in inner.trending(2, now=2 * H)]
    inner.record_clicks("v", ["c", "c", "c"], ts=2 * H)
    assert "c" not in dict(cache.trending(2, now=2 * H))  # within the ttl
    clock.t = 1.5
    assert cache.trending(2, now=2 * H)[0][0] == "c"


def test_many_articles_grow_the_table_and_duplicates_are_fine() -> None:
    inner = MemoryOnlineStore(half_life_hours=1.0)
    ids = [f"a{i}" for i in range(3000)]
    inner.record_impressions(ids, ts=0.0)
    cache = StatsCachingStore(inner, ttl_s=60.0, max_entries=2500)
    asked = ids[:2000] + ids[:10]
    assert cache.stats_matrix(asked, now=H) == pytest.approx(inner.stats_matrix(asked, H))
    assert cache.stats_matrix(asked, now=H) == pytest.approx(inner.stats_matrix(asked, H))
    assert cache.hits == len(asked)
    rest = ids[2000:]  # past max_entries: cleared, still right
    assert cache.stats_matrix(rest, now=H) == pytest.approx(inner.stats_matrix(rest, H))


def test_refuses_a_non_positive_ttl() -> None:
    from newsdesk.errors import ConfigError

    with pytest.raises(ConfigError, match="ttl_s"):
        StatsCachingStore(MemoryOnlineStore(), ttl_s=0)


def test_trending_keeps_its_own_shorter_lifetime() -> None:
    inner = MemoryOnlineStore(half_life_hours=1.0)
    clock = Clock()
    cache = StatsCachingStore(inner, ttl_s=5.0, trending_ttl_s=1.0, monotonic=clock)
    inner.record_clicks("u", ["a"], ts=0.0)
    assert [a for a, _ in cache.trending(1, now=0.0)] == ["a"]
    cache.stats_matrix(["a"], now=0.0)
    inner.record_clicks("v", ["b", "b"], ts=0.0)
    clock.t = 1.5  # past the trending lifetime, within the rows' one
    assert cache.trending(1, now=0.0)[0][0] == "b"
    assert cache.stats_matrix(["b", "a"], now=0.0)[1, 2] == 1  # a's row: still the cached one


def _join_refresh(cache: StatsCachingStore, expected: int) -> None:
    """Wait until the background thread has re-read `expected` rows in all."""
    import time

    deadline = time.monotonic() + 10.0
    while cache.refreshed < expected and time.monotonic() < deadline:
        time.sleep(0.005)
    assert cache.refreshed == expected


def test_rows_read_late_in_their_life_are_refreshed_in_the_background() -> None:
    inner = MemoryOnlineStore(half_life_hours=1.0)
    clock = Clock()
    cache = StatsCachingStore(inner, ttl_s=1.0, refresh_ahead=0.4, serve_stale_s=2.0,
                              monotonic=clock)
    inner.record_impressions(["a", "b"], ts=0.0)
    cache.stats_matrix(["a", "b"], now=0.0)
    inner.record_clicks("other", ["a"], ts=0.0)
    clock.t = 0.5  # 0.5 s of life left > 0.4: served from the cache, nothing re-read
    assert cache.stats_matrix(["a"], now=0.0)[0, 2] == 0
    assert cache.refreshed == 0
    clock.t = 0.7  # 0.3 s left: still served from the cache (no wait) ...
    assert cache.stats_matrix(["a"], now=0.0)[0, 2] == 0
    _join_refresh(cache, 1)  # ... and re-read meanwhile, with a new lifetime
    clock.t = 1.5  # past the first lifetime: the refreshed row, no synchronous read
    assert cache.stats_matrix(["a"], now=0.0)[0, 2] == 1
    assert (cache.hits, cache.misses) == (3, 2)
    _join_refresh(cache, 2)  # 0.2 s of its new life left: re-read once more
    inner.record_clicks("other", ["b"], ts=0.0)
    clock.t = 2.5  # b expired at 1.0, 1.5 s ago (< serve_stale_s): served stale, re-read
    assert cache.stats_matrix(["b"], now=0.0)[0, 2] == 0
    _join_refresh(cache, 3)
    assert cache.stats_matrix(["b"], now=0.0)[0, 2] == 1
    inner.record_clicks("other", ["b"], ts=0.0)
    clock.t = 6.0  # b's new row expired at 3.5, 2.5 s ago (> serve_stale_s): read now
    assert cache.stats_matrix(["b"], now=0.0)[0, 2] == 2
    assert (cache.hits, cache.misses) == (5, 3)
    cache.close()


def test_refuses_a_refresh_ahead_outside_its_range() -> None:
    from newsdesk.errors import ConfigError

    with pytest.raises(ConfigError, match="refresh_ahead"):
        StatsCachingStore(MemoryOnlineStore(), ttl_s=1.0, refresh_ahead=1.0)
