"""Baseline recommenders: smoothed streaming CTR from the real store, popularity, random."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from newsdesk.data.schema import Article
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.models.base import RequestContext
from newsdesk.models.baselines import MostPopular, RandomRecommender, StreamingCTRRecommender

NOW = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def test_streaming_ctr_is_the_smoothed_decayed_ratio() -> None:
    store = MemoryOnlineStore(half_life_hours=1.0)
    store.record_impressions(["a", "a", "b"], NOW)
    store.record_clicks("u", ["a"], NOW)
    rec = StreamingCTRRecommender(store, prior_ctr=0.1, prior_strength=2.0)
    ctx = RequestContext(user_id="u", now=NOW + 3600)  # one half-life later
    got = rec.score(ctx, ["a", "b", "new"])
    np.testing.assert_allclose(got, [(0.5 + 0.2) / (1.0 + 2.0), 0.2 / 2.5, 0.1], rtol=1e-6)
    with pytest.raises(ValueError, match="prior_ctr"):
        StreamingCTRRecommender(store, prior_ctr=0.0)


def test_most_popular_and_random_and_catalog_ranking() -> None:
    pop = MostPopular().fit(["a", "b", "a", "c", "a", "b"])
    arts = [Article(article_id=x, title=x, category="news",
                    published_at=datetime(2023, 12, 31, tzinfo=UTC)) for x in "abcd"]
    pop.upsert_articles(arts)
    ctx = RequestContext(user_id="u", now=NOW, k=3, exclude=frozenset({"b"}))
    assert [s.article_id for s in pop.recommend(ctx)] == ["a", "c", "d"]
    assert pop.remove_article("a") and not pop.remove_article("zz")
    assert [s.article_id for s in pop.related("c", 5, NOW)] == ["b", "d"]
    r1, r2 = RandomRecommender(seed=7), RandomRecommender(seed=7)
    np.testing.assert_array_equal(r1.score(ctx, ["a", "b"]), r2.score(ctx, ["a", "b"]))
