"""Online co-visitation (features/covisitation.py): one contract suite run against the memory
store and a real redis-server, checked against a brute-force count of the session rule."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from newsdesk.errors import ConfigError
from newsdesk.features.bulk_apply import EventBatch, apply_batch
from newsdesk.features.covisitation import CoVisitParams, MemoryCoVisits
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.online_store import OnlineStore
from newsdesk.features.redis_store import RedisOnlineStore

H = 3600.0
StoreFactory = Callable[..., OnlineStore]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    opened: list[OnlineStore] = []

    def factory(**covisit: object) -> OnlineStore:
        params = CoVisitParams(**{"half_life_hours": 1.0, **covisit})  # type: ignore[arg-type]
        if request.param == "memory":
            store: OnlineStore = MemoryOnlineStore(half_life_hours=1.0, covisit=params)
        else:
            store = RedisOnlineStore(request.getfixturevalue("redis_server"), half_life_hours=1.0,
                                     prefix=f"test-{uuid.uuid4().hex[:8]}:", covisit=params)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        if isinstance(store, RedisOnlineStore):
            store.clear()
        store.close()


def brute_force(clicks: list[tuple[str, str, float]], p: CoVisitParams, now: float
                ) -> dict[str, dict[str, float]]:
    """The session rule written out plainly: per reader, each click pairs with the previous
    `window` clicks back to the first gap > session_gap_s."""
    hist: dict[str, list[tuple[str, float]]] = {}
    out: dict[str, dict[str, float]] = {}
    for user, b, ts in clicks:
        prev = hist.setdefault(user, [])
        t = ts
        for a, ats in list(reversed(prev))[: p.window]:
            if t - ats > p.session_gap_s:
                break
            if a != b and not a.startswith("\x00") and not b.startswith("\x00"):
                w = 2.0 ** (-(now - ts) / (p.half_life_hours * H))
                out.setdefault(a, {}).setdefault(b, 0.0)
                out.setdefault(b, {}).setdefault(a, 0.0)
                out[a][b] += w
                out[b][a] += w
            t = ats
        prev.append((b, ts))
    return out


def read_all(store: OnlineStore, ids: list[str], now: float) -> dict[str, dict[str, float]]:
    rows = store.coclick_neighbours(ids, now, 1000)
    return {a: dict(row) for a, row in zip(ids, rows, strict=True) if row}


def assert_close(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> None:
    assert got.keys() == want.keys()
    for a in want:
        assert got[a].keys() == want[a].keys(), a
        for b in want[a]:
            assert got[a][b] == pytest.approx(want[a][b], rel=1e-9), (a, b)


def test_session_pairs_decay_by_hand(make_store: StoreFactory) -> None:
    store = make_store()
    store.record_clicks("u", ["A"], 0.0)
    store.record_clicks("u", ["B"], H)  # gap 1 h > 30 min: a new session, no pair
    store.record_clicks("u", ["C"], H + 600)
    store.record_clicks("u", ["D"], H + 1200)
    got = read_all(store, ["A", "B", "C", "D"], now=H + 1200)
    # C pairs with B at H+600 (worth 2**(-600/3600) at the read); D with C and B at the read
    c = 2.0 ** (-600 / H)
    assert_close(got, {"B": {"C": c, "D": 1.0}, "C": {"B": c, "D": 1.0},
                       "D": {"C": 1.0, "B": 1.0}})
    # most first, ties by id descending (the Redis order)
    assert [a for a, _ in store.coclick_neighbours(["D"], H + 1200, 5)[0]] == ["C", "B"]
    assert [a for a, _ in store.coclick_neighbours(["B"], H + 1200, 5)[0]] == ["D", "C"]
    assert store.coclick_neighbours(["B"], H + 1200, 1) == [[("D", pytest.approx(1.0))]]
    assert store.coclick_neighbours(["nobody"], 0.0, 5) == [[]]


def test_matches_brute_force_and_batch_path(make_store: StoreFactory) -> None:
    p = dict(session_gap_s=900.0, window=3)
    rng = np.random.default_rng(3)
    arts = [f"a{i}" for i in range(12)] + ["\x00unknown"]
    users = [f"u{i}" for i in range(6)]
    t = 0.0
    clicks = []
    for _ in range(300):
        t += float(rng.exponential(200.0))
        clicks.append((users[rng.integers(len(users))], arts[rng.integers(len(arts))], t))
    one_by_one, batched = make_store(**p), make_store(**p)
    for u, a, ts in clicks:
        one_by_one.record_clicks(u, [a], ts)
    # the batch path (apply_batch: merge_coclicks from the stored lists), in three batches
    ids, uids = arts, users
    for lo, hi in ((0, 100), (100, 250), (250, 300)):
        part = clicks[lo:hi]
        apply_batch(batched, EventBatch(
            ids=ids, users=uids, imp_key=np.zeros(0, np.int64), imp_ts=np.zeros(0),
            click_user=np.array([uids.index(u) for u, _, _ in part]),
            click_key=np.array([ids.index(a) for _, a, _ in part]),
            click_ts=np.array([ts for _, _, ts in part])), small=0)
    want = brute_force(clicks, CoVisitParams(half_life_hours=1.0, **p), now=t)  # type: ignore
    assert want, "the fixture must produce co-clicks"
    assert_close(read_all(one_by_one, arts, t), want)
    assert_close(read_all(batched, arts, t), want)


def test_a_read_of_many_articles_spans_several_script_calls(make_store: StoreFactory) -> None:
    # CF's fold-in reads every fresh live article at once: more than one chunk on Redis
    store = make_store(window=1)
    n = 450
    for i in range(n):
        store.record_clicks(f"r{i}", [f"p{i}"], 10.0 * i)
        store.record_clicks(f"r{i}", [f"q{i}"], 10.0 * i + 1)
    ids = [f"p{i}" for i in range(n)] + ["nobody"] + [f"q{i}" for i in range(n)]
    rows = store.coclick_neighbours(ids, 10.0 * n, 5)
    assert len(rows) == len(ids) and rows[n] == []
    for i in (0, 199, 200, 201, 449):
        assert [a for a, _ in rows[i]] == [f"q{i}"]
        assert [a for a, _ in rows[n + 1 + i]] == [f"p{i}"]


def test_rows_are_bounded_to_top_k(make_store: StoreFactory) -> None:
    store = make_store(top_k=2, window=1)
    # "hub" is read right before each of 7 others; x3 after it three times, x5 twice
    t = 0.0
    for n, other in enumerate(["x1", "x2", "x3", "x3", "x3", "x4", "x5", "x5", "x6", "x7"]):
        user = f"r{n}"
        store.record_clicks(user, ["hub"], t)
        store.record_clicks(user, [other], t + 1)
        t += 10
    row = store.coclick_neighbours(["hub"], t, 100)[0]
    assert len(row) <= 4  # past 2 * top_k the row is cut back to top_k
    assert [a for a, _ in row[:2]] == ["x3", "x5"]


def test_rebase_keeps_values(make_store: StoreFactory) -> None:
    store = make_store(half_life_hours=1.0, session_gap_s=10.0)
    store.record_clicks("u", ["A"], 0.0)
    store.record_clicks("u", ["B"], 1.0)
    late = 100 * H  # 100 half-lives later: the row of A re-bases (past 2**64)
    store.record_clicks("v", ["A"], late)
    store.record_clicks("v", ["C"], late + 1.0)
    row = dict(store.coclick_neighbours(["A"], late + 1.0, 10)[0])
    assert row["C"] == pytest.approx(1.0)
    assert row["B"] == pytest.approx(2.0 ** (-(late) / H), rel=1e-9)


def test_memory_rows_expire_when_idle() -> None:
    co = MemoryCoVisits(CoVisitParams(ttl_s=100.0))
    co.add("A", "B", 0.0)
    co.add("C", "D", 150.0)
    assert co.expire(150.0) == 2  # A and B idle since 0
    assert co.neighbours(["A", "C"], 150.0, 5) == [[], [("D", 1.0)]]


@pytest.mark.parametrize("bad", [{"window": 0}, {"top_k": 1.5}, {"half_life_hours": 0},
                                 {"session_gap_s": -1.0}, {"ttl_s": 0}])
def test_params_refuse_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        CoVisitParams(**bad)  # type: ignore[arg-type]


def test_replay_matches_the_store_at_every_checkpoint() -> None:
    """ReplayCoVisits (what training sees) gives the store's counts at each query time."""
    from newsdesk.features.covisit_replay import ReplayCoVisits

    p = CoVisitParams(half_life_hours=1.0, session_gap_s=600.0, window=3)
    rng = np.random.default_rng(5)
    n_art, n_user = 9, 5
    t, clicks = 0.0, []
    for _ in range(400):
        t += float(rng.exponential(120.0))
        art = int(rng.integers(-1, n_art))  # -1: an article unknown to the catalog
        clicks.append((int(rng.integers(n_user)), art, t))
    user = np.array([u for u, _, _ in clicks])
    article = np.array([a for _, a, _ in clicks])
    ts = np.array([x for _, _, x in clicks])
    rc = ReplayCoVisits.fit(user, article, ts, p, n_art)
    store = MemoryOnlineStore(half_life_hours=1.0, covisit=p)
    ids = [f"a{i}" for i in range(n_art)]
    checks = 0
    for i, (u, a, x) in enumerate(clicks):
        if i % 50 == 49:  # a query just before click i: everything before it is in the store
            q = x - 1e-3
            got = read_all(store, ids, q)
            aa, bb = np.meshgrid(np.arange(n_art), np.arange(n_art), indexing="ij")
            want = rc.lookup(aa.ravel(), bb.ravel(), np.full(aa.size, q)).reshape(aa.shape)
            for ai in range(n_art):
                for bi in range(n_art):
                    g = got.get(ids[ai], {}).get(ids[bi], 0.0)
                    assert g == pytest.approx(want[ai, bi], rel=1e-9, abs=1e-12), (i, ai, bi)
            checks += int((want > 0).sum())
        store.record_clicks(f"u{u}", [ids[a] if a >= 0 else "\x00unknown"], x)
    assert checks > 50  # the comparison covered real co-clicks
    assert rc.lookup(np.array([-1, 0]), np.array([0, 99]), np.array([t, t])).tolist() == [0, 0]
