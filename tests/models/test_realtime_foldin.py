"""Fold-in while serving (models/candidates/collaborative.py): articles published after
training get a vector from the online co-visitation, readers unknown to the model one ALS
user step against the item factors (checked against implicit's own recalculate_user)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp

from newsdesk.content import Embedder
from newsdesk.data.schema import Article
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.ranking_features import FeatureBuilder, RankingInputs
from newsdesk.models.candidates import CollaborativeGenerator, Workspace
from newsdesk.models.catalog import ArticleCatalog

NOW = 1_800_000_000.0


@pytest.fixture
def ws(embedder: Embedder) -> Workspace:
    catalog = ArticleCatalog(embedder.dim)
    arts = [Article(article_id=f"old{i}", title=f"Old story number {i}", category="news",
                    published_at=datetime.fromtimestamp(NOW - 86_400 + i, UTC))
            for i in range(6)]
    catalog.upsert(arts, embedder)
    return Workspace(catalog, MemoryOnlineStore(half_life_hours=6.0), FeatureBuilder(),
                     max_age_hours=72.0)


def _fit(ws: Workspace) -> CollaborativeGenerator:
    # two taste groups: readers 0-3 read old0..old2, readers 4-7 read old3..old5
    user = np.repeat(np.arange(8), 3)
    art = np.array([[0, 1, 2]] * 4 + [[3, 4, 5]] * 4).ravel()
    return CollaborativeGenerator(ws, factors=4, iterations=15, seed=0).fit(
        [f"t{u}" for u in range(8)], user, art, ws.catalog.size)


def _publish(ws: Workspace, embedder: Embedder, article_id: str) -> int:
    ws.catalog.upsert([Article(article_id=article_id, title=f"Fresh {article_id}",
                               category="news",
                               published_at=datetime.fromtimestamp(NOW - 600, UTC))], embedder)
    return int(ws.catalog.lookup([article_id])[0])


def _rows(ws: Workspace, user: str, click_ids: list[str], rows: list[str],
          now: float = NOW) -> RankingInputs:
    idx = np.full((1, 4), -1, np.int64)
    idx[0, : len(click_ids)] = ws.catalog.lookup(click_ids)
    return RankingInputs(click_idx=idx, click_ts=np.full((1, 4), NOW - 60),
                         user_ids=[user], row_query=np.zeros(len(rows), np.int64),
                         row_article=ws.catalog.lookup(rows), now=np.full(len(rows), now),
                         position=np.zeros(len(rows)), stats=np.zeros((len(rows), 4)))


def test_fresh_article_vector_is_the_decayed_mean_of_its_co_read_factors(
        ws: Workspace, embedder: Embedder) -> None:
    cf = _fit(ws)
    fresh = _publish(ws, embedder, "fresh")
    # (NOW - 400: the refresh bucket before NOW's, vectors are kept per bucket)
    assert cf.pair_scores(_rows(ws, "t0", [], ["fresh"], NOW - 400))[0] == 0.0
    # readers go old0 -> fresh twice (one an hour earlier), old1 -> fresh once
    st = ws.store
    st.record_clicks("a", ["old0"], NOW - 3700)
    st.record_clicks("a", ["fresh"], NOW - 3600)
    st.record_clicks("b", ["old0"], NOW - 200)
    st.record_clicks("b", ["fresh"], NOW - 100)
    st.record_clicks("c", ["old1"], NOW - 150)
    st.record_clicks("c", ["fresh"], NOW - 100)
    idx, vec = cf.fresh_vectors(NOW)
    assert idx.tolist() == [fresh]
    hl = st.covisit.half_life_hours * 3600.0
    w0 = 2 ** (-3600 / hl) + 2 ** (-100 / hl)
    w1 = 2 ** (-100 / hl)
    want = (w0 * cf.item_factors_[0] + w1 * cf.item_factors_[1]) / (w0 + w1)
    np.testing.assert_allclose(vec[0], want, rtol=1e-5)
    # a reader of the first taste group now scores it like the group's articles, the other
    # group's reader does not
    s_in = cf.pair_scores(_rows(ws, "t0", [], ["fresh", "old2"]))
    s_out = cf.pair_scores(_rows(ws, "t5", [], ["fresh"]))
    assert s_in[0] > 0.3 * s_in[1] > 0 and s_out[0] < 0.5 * s_in[0]
    ids, _ = cf.propose(ws.view("t0", NOW), 10)
    assert fresh in ids.tolist()
    cf.online_foldin = False
    assert cf.pair_scores(_rows(ws, "t0", [], ["fresh"]))[0] == 0.0
    assert fresh not in cf.propose(ws.view("t0", NOW), 10)[0].tolist()


def test_fresh_vectors_are_cached_per_bucket_and_see_no_later_clicks(
        ws: Workspace, embedder: Embedder) -> None:
    cf = _fit(ws)
    _publish(ws, embedder, "fresh")
    first = cf.fresh_vectors(NOW)
    assert len(first[0]) == 0
    ws.store.record_clicks("a", ["old0"], NOW + 1)
    ws.store.record_clicks("a", ["fresh"], NOW + 2)
    bucket_end = (np.floor(NOW / cf.foldin_refresh_s) + 1) * cf.foldin_refresh_s
    assert bucket_end > NOW + 3  # same bucket: the vectors computed at NOW are reused
    assert len(cf.fresh_vectors(NOW + 3)[0]) == 0
    assert len(cf.fresh_vectors(bucket_end)[0]) == 1


def test_serving_refreshes_a_new_bucket_off_the_request_path(
        ws: Workspace, embedder: Embedder) -> None:
    cf = _fit(ws)
    cf.refresh_in_background = True
    _publish(ws, embedder, "fresh")
    assert len(cf.fresh_vectors(NOW)[0]) == 0  # no vectors yet: the first refresh blocks
    ws.store.record_clicks("a", ["old0"], NOW + 1)
    ws.store.record_clicks("a", ["fresh"], NOW + 2)
    bucket_end = (np.floor(NOW / cf.foldin_refresh_s) + 1) * cf.foldin_refresh_s
    # the new bucket's first request gets the previous vectors at once ...
    assert len(cf.fresh_vectors(bucket_end)[0]) == 0
    # ... while a background thread computes the new ones, which the next request gets
    for thread in threading.enumerate():
        if thread.name == "cf-foldin-refresh":
            thread.join(10.0)
    assert len(cf.fresh_vectors(bucket_end + 1)[0]) == 1
    assert cf._fresh_lock.acquire(blocking=False)  # released by the refresh thread


def test_unknown_reader_fold_in_is_an_als_user_step(ws: Workspace) -> None:
    implicit_als = pytest.importorskip("implicit.cpu.als")
    cf = _fit(ws)
    clicks = np.array([0, 1, 1, -1])  # old1 read twice
    got = cf.user_vectors(["stranger"], clicks[None, :], NOW)[0]
    model = implicit_als.AlternatingLeastSquares(factors=cf.factors,
                                                 regularization=cf.regularization,
                                                 random_state=0)
    model.item_factors = np.asarray(cf.item_factors_, np.float32)
    model.user_factors = np.zeros((1, cf.factors), np.float32)
    conf = 1.0 + cf.alpha * np.log1p(np.array([1.0, 2.0]))
    row = sp.csr_matrix((conf.astype(np.float32), ([0, 0], [0, 1])),
                        shape=(1, ws.catalog.size))
    want = np.asarray(model.recalculate_user(0, row)).ravel()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    # off: the mean factor of the clicks, as before
    cf.online_foldin = False
    mean = cf.user_vectors(["stranger"], clicks[None, :], NOW)[0]
    np.testing.assert_allclose(mean, cf.item_factors_[[0, 1, 1]].mean(axis=0), rtol=1e-5)
    # a fitted reader keeps the fitted factor either way
    cf.online_foldin = True
    np.testing.assert_array_equal(cf.user_vectors(["t0"], clicks[None, :], NOW)[0],
                                  cf.user_factors_[cf.user_index_["t0"]])


def test_bad_foldin_settings_are_refused(ws: Workspace) -> None:
    with pytest.raises(ValueError, match="foldin_refresh_s"):
        CollaborativeGenerator(ws, foldin_refresh_s=0)
    with pytest.raises(ValueError, match="foldin_neighbours"):
        CollaborativeGenerator(ws, foldin_neighbours=0)


def test_training_rows_see_the_fresh_vector_serving_would(ws: Workspace,
                                                          embedder: Embedder) -> None:
    """The training path (ReplayCoVisits over the log) gives a fresh article the vector the
    store gives it at the start of the row's refresh bucket."""
    from newsdesk.features.covisit_replay import ReplayCoVisits

    cf = _fit(ws)
    fresh = _publish(ws, embedder, "fresh")
    clicks = [("a", "old0", NOW - 3700), ("a", "fresh", NOW - 3600), ("b", "old0", NOW - 200),
              ("b", "fresh", NOW - 100), ("c", "old4", NOW - 150), ("c", "fresh", NOW - 90),
              ("d", "old1", NOW + 10), ("d", "fresh", NOW + 20)]  # after the bucket start
    for u, art, t in clicks:
        if t < NOW:
            ws.store.record_clicks(u, [art], t)
    idx, vec = cf.fresh_vectors(NOW)  # NOW is a bucket start; the store holds what is before
    users = {"a": 0, "b": 1, "c": 2, "d": 3}
    cf.replay_covisits = ReplayCoVisits.fit(
        np.array([users[u] for u, _, _ in clicks]), ws.catalog.lookup([a for _, a, _ in clicks]),
        np.array([t for _, _, t in clicks]), ws.store.covisit, ws.catalog.size)
    rows = ws.catalog.lookup(["fresh", "fresh", "old2"])
    got, hit = cf._replayed_fresh(rows, np.array([NOW + 30, NOW + 299, NOW + 30]))
    assert hit.tolist() == [True, True, False]
    np.testing.assert_allclose(got[0], vec[idx.tolist().index(fresh)], rtol=1e-6)  # float32
    np.testing.assert_allclose(got[1], got[0], rtol=1e-12)
    # the training rows' cf_score uses it (the replay is what training sets on the model)
    inputs = _rows(ws, "t0", [], ["fresh"], NOW + 30)
    assert cf.pair_scores(inputs)[0] == pytest.approx(
        float(cf.user_factors_[cf.user_index_["t0"]] @ got[0]), rel=1e-5)
