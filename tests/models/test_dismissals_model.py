"""A dismissal through the real bundle: the article is gone, what resembles it ranks lower."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from newsdesk.content import Embedder
from newsdesk.data.schema import Interaction, InteractionType
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import LogArrays, warm_store
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import load_recommender


def test_dismissed_article_never_returns_and_its_category_sinks(
        bundle_dir: Path, embedder: Embedder, log: LogArrays, at_time: float) -> None:
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=at_time)
    rec = load_recommender(bundle_dir, store, embedder=embedder)
    cat = rec.ws.catalog
    ev = log.events
    counts = np.bincount(ev.click_user[ev.click_ts < at_time], minlength=len(ev.user_ids))
    checked = 0
    for u in np.argsort(-counts, kind="stable")[:40].tolist():
        user = ev.user_ids[u]
        before = rec.recommend(RequestContext(user_id=user, now=at_time, k=11))
        top = before[0].article_id
        top_cat = cat.category[cat.index[top]]
        if sum(cat.category[cat.index[o.article_id]] == top_cat for o in before) < 3:
            continue
        store.record_events([Interaction(
            event_id=f"d-{user}", type=InteractionType.DISMISS, user_id=user, article_id=top,
            reason="not_interested", timestamp=datetime.fromtimestamp(at_time, UTC))])
        after = rec.recommend(RequestContext(user_id=user, now=at_time + 60, k=10))
        assert len(after) == 10 and top not in {o.article_id for o in after}
        # what resembles the dismissal (its category) scores lower; the rest hardly moves
        was = {o.article_id: o.score for o in before}
        drop_same, drop_other = [], []
        for o in after:
            if o.article_id in was:
                same = cat.category[cat.index[o.article_id]] == top_cat
                (drop_same if same else drop_other).append(was[o.article_id] - o.score)
        assert drop_same and min(drop_same) > 0
        assert not drop_other or np.mean(drop_same) > 2 * np.mean(np.abs(drop_other))
        checked += 1
        if checked == 3:
            break
    assert checked == 3
