"""Streaming replay: time order, articles at publish time, and no leakage of an impression's
own clicks (a recommender that scores by already-recorded clicks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.evaluation import metrics as M
from newsdesk.evaluation.mind_protocol import labeled_impressions
from newsdesk.evaluation.replay import (
    ClickEvent,
    ImpressionEvent,
    build_events,
    replay,
    replay_events,
)
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.models.base import RequestContext
from newsdesk.models.baselines import CatalogRecommender, StreamingCTRRecommender


class RecordedClicks(CatalogRecommender):
    """Scores an article by its raw click count in the store at scoring time, and logs it."""

    name = "recorded_clicks"

    def __init__(self, store: MemoryOnlineStore) -> None:
        super().__init__()
        self.store = store
        self.log: list[tuple[str, dict[str, float], int]] = []

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        stats = self.store.article_stats(list(article_ids), ctx.now)
        scores = np.array([float(s.clicks) for s in stats])
        self.log.append((ctx.user_id, dict(zip(article_ids, scores, strict=True)),
                         len(self._live(ctx.now))))
        return scores


def test_correct_replay_never_shows_an_impressions_own_clicks(leak_dataset: Dataset) -> None:
    store = MemoryOnlineStore(half_life_hours=6.0)
    rec = RecordedClicks(store)
    evals = replay(leak_dataset, {"clicks": rec}, store)["clicks"]
    assert evals.impression_ids == ["r1", "r2", "r3", "r4", "r5", "r6"]
    by_imp = dict(zip(evals.impression_ids, [entry[1] for entry in rec.log], strict=True))
    # clicked articles of r1..r4 had no click before their impression: score 0, not 1
    for rid, clicked in [("r1", "a1"), ("r2", "a4"), ("r3", "a7"), ("r4", "a9")]:
        assert by_imp[rid][clicked] == 0.0, rid
    # r2 is at the same second as r1: r1's click on a1 is not visible in r2 either
    assert by_imp["r2"]["a2"] == 0.0
    # past clicks ARE visible: the replay is not simply empty
    assert by_imp["r5"] == {"a1": 1.0, "a3": 0.0, "a5": 0.0}
    assert by_imp["r6"] == {"a4": 1.0, "a7": 1.0, "a9": 1.0, "a3": 1.0, "a8": 0.0}
    # all-zero scores for r1..r4 -> the AUC of reverse shown order, the one tie rule shared
    # with the prediction file (a leak would give 1.0)
    labels = {imp.impression_id: imp.labels for imp in labeled_impressions(leak_dataset)}
    for rid, got in zip(evals.impression_ids[:4], evals.per_unit()["auc"][:4], strict=True):
        n = len(labels[rid])
        assert got == M.auc(labels[rid], np.arange(n, dtype=float)) < 1.0, rid
    assert evals.per_unit()["auc"][4] == 0.0  # r5: a3 below a1; its tie with a5 goes to a5
    # the store saw every impression and click after the replay
    assert store.article_stats(["a3"], 1e12)[0].impressions == 5
    assert store.article_stats(["a3"], 1e12)[0].clicks == 1


def test_a_leaky_order_is_caught(leak_dataset: Dataset) -> None:
    """The same events with each click moved before its impression: the scorer sees them."""
    events = build_events(leak_dataset)
    leaky: list = []
    for ev in events:
        if isinstance(ev, ClickEvent):
            idx = max(i for i, e in enumerate(leaky) if isinstance(e, ImpressionEvent)
                      and e.impression.user_id == ev.user_id
                      and set(ev.article_ids) <= set(e.impression.clicked))
            leaky.insert(idx, ev)
        else:
            leaky.append(ev)
    store = MemoryOnlineStore()
    evals = replay_events(leaky, {"clicks": RecordedClicks(store)}, store)["clicks"]
    assert list(evals.per_unit()["auc"][:4]) == [1.0, 1.0, 1.0, 1.0]  # what the test rejects


def test_articles_become_known_at_publish_time(leak_dataset: Dataset) -> None:
    store = MemoryOnlineStore()
    rec = RecordedClicks(store)
    replay(leak_dataset, {"clicks": rec}, store)
    catalog_sizes = [entry[2] for entry in rec.log]
    assert catalog_sizes[0] == 9  # a9 is published 5 minutes after r1
    assert catalog_sizes[3] == 10


def test_warm_up_and_window(leak_dataset: Dataset) -> None:
    start = build_events(leak_dataset)[0].ts  # the first article's publish time
    t_r3 = start + 70 * 60  # articles at -60 min, r3 at +10 min
    store = MemoryOnlineStore()
    ctr = StreamingCTRRecommender(store, prior_ctr=0.1, prior_strength=1.0)
    evals = replay(leak_dataset, {"ctr": ctr}, store, score_from=t_r3,
                   score_until=t_r3 + 15 * 60)["ctr"]
    assert evals.impression_ids == ["r3", "r4"]
    # warm-up r1, r2 fed the store: a2 shown twice, never clicked -> below the prior
    assert store.article_stats(["a2"], t_r3)[0].impressions == 3
    assert store.article_stats(["a8"], 1e12)[0].impressions == 1  # r6 was dropped


def test_scores_of_wrong_shape_are_rejected(leak_dataset: Dataset) -> None:
    class Broken(RecordedClicks):
        def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
            return np.zeros(len(article_ids) + 1)

    store = MemoryOnlineStore()
    with pytest.raises(ValueError, match="shape"):
        replay(leak_dataset, {"broken": Broken(store)}, store)
