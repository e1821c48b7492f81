"""The co-click generator merges trained counts with the online store's co-visitation: an
article published after training gains co-click candidates and a co-click feature from clicks
recorded while serving."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from newsdesk.content import Embedder
from newsdesk.data.schema import Article
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.ranking_features import FeatureBuilder, RankingInputs
from newsdesk.models.candidates import CoClickGenerator, Workspace

NOW = 1_800_000_000.0


def _ws(embedder: Embedder) -> Workspace:
    from newsdesk.models.catalog import ArticleCatalog

    catalog = ArticleCatalog(embedder.dim)
    arts = [Article(article_id=f"old{i}", title=f"Old story number {i}", category="news",
                    published_at=datetime.fromtimestamp(NOW - 86_400 + i, UTC))
            for i in range(4)]
    catalog.upsert(arts, embedder)
    return Workspace(catalog, MemoryOnlineStore(half_life_hours=6.0), FeatureBuilder(),
                     max_age_hours=72.0)


def _inputs(ws: Workspace, user: str, rows: list[str], now: float) -> RankingInputs:
    idx, ts = ws.user_clicks(user)
    return RankingInputs(click_idx=idx[None, :], click_ts=ts[None, :], user_ids=[user],
                         row_query=np.zeros(len(rows), np.int64),
                         row_article=ws.catalog.lookup(rows), now=np.full(len(rows), now),
                         position=np.zeros(len(rows)), stats=np.zeros((len(rows), 4)))


def test_fresh_article_gains_coclick_signal_from_the_stream(embedder: Embedder) -> None:
    ws = _ws(embedder)
    # trained on old0 -> old1 only; "fresh" is published after training
    co = CoClickGenerator(ws).fit(np.array([0, 0]), np.array([0, 1]), np.array([0.0, 60.0]),
                                  ws.catalog.size)
    ws.catalog.upsert([Article(article_id="fresh", title="Breaking: a brand new story",
                               category="news",
                               published_at=datetime.fromtimestamp(NOW - 600, UTC))], embedder)
    reader = "reader"
    ws.store.record_clicks(reader, ["old2"], NOW - 300)
    view = ws.view(reader, NOW)
    assert "fresh" not in [ws.catalog.ids[i] for i in co.propose(view, 10)[0]]
    before = co.pair_scores(_inputs(ws, reader, ["fresh", "old3"], NOW))
    assert before.tolist() == [0.0, 0.0]
    # ten minutes of serving: three readers go from old2 to the fresh article
    for k in range(3):
        ws.store.record_clicks(f"r{k}", ["old2"], NOW - 200 + k)
        ws.store.record_clicks(f"r{k}", ["fresh"], NOW - 100 + k)
    view = ws.view(reader, NOW)
    idx, scores = co.propose(view, 10)
    ids = [ws.catalog.ids[i] for i in idx]
    assert ids[0] == "fresh" and scores[0] == pytest.approx(
        sum(2.0 ** (-(100 - k) / 86_400.0) for k in range(3)) * co._weights(
            view.click_idx[None, :])[0][0], rel=1e-6)
    after = co.pair_scores(_inputs(ws, reader, ["fresh", "old3"], NOW))
    assert after[0] == pytest.approx(scores[0], rel=1e-9) and after[1] == 0.0
    # the trained counts still count, the online ones add to them
    ws.store.record_clicks("r9", ["old0"], NOW - 50)
    ws.store.record_clicks("r9", ["old1"], NOW - 40)
    ws.store.record_clicks(reader, ["old0"], NOW - 30)
    both = co.pair_scores(_inputs(ws, reader, ["old1"], NOW))[0]
    co.online_weight = 0.0
    trained = co.pair_scores(_inputs(ws, reader, ["old1"], NOW))[0]
    assert trained > 0 and both > trained


def test_online_counts_decay_to_each_rows_time(embedder: Embedder) -> None:
    ws = _ws(embedder)
    co = CoClickGenerator(ws)  # nothing trained
    ws.store.record_clicks("a", ["old0"], NOW - 100)
    ws.store.record_clicks("a", ["old1"], NOW - 50)
    ws.store.record_clicks("u", ["old0"], NOW - 10)
    idx, ts = ws.user_clicks("u")
    a = ws.catalog.lookup(["old1"])[0]
    inputs = RankingInputs(click_idx=np.stack([idx, idx]), click_ts=np.stack([ts, ts]),
                           user_ids=["u", "u"], row_query=np.array([0, 1]),
                           row_article=np.array([a, a]), now=np.array([NOW, NOW + 86_400.0]),
                           position=np.zeros(2), stats=np.zeros((2, 4)))
    s = co.pair_scores(inputs)
    assert s[1] == pytest.approx(s[0] / 2.0, rel=1e-9)  # one co-visitation half-life later


def test_bad_online_settings_are_refused(embedder: Embedder) -> None:
    ws = _ws(embedder)
    with pytest.raises(ValueError, match="online_weight"):
        CoClickGenerator(ws, online_weight=-1.0)
    with pytest.raises(ValueError, match="online_neighbours"):
        CoClickGenerator(ws, online_neighbours=0)
