"""Reference recommenders every evaluation compares against.

    RandomRecommender          uniform random scores (seeded): the floor
    StreamingCTRRecommender    smoothed CTR from the online store's decayed counts at request time
    MostPopular                static click counts learned from a training period

All three keep a live catalog (so `recommend` can rank the whole catalog) and implement the
full `Recommender` contract; unknown ids get a finite score, never an error.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from newsdesk.data.schema import Article
from newsdesk.features.online_store import OnlineStore
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle


class CatalogRecommender(Recommender):
    """A recommender that ranks its live catalog with `score`; subclasses define `score`."""

    version = "baseline"
    name = "catalog"

    def __init__(self) -> None:
        self._catalog: dict[str, Article] = {}
        self._lock = threading.Lock()

    def upsert_articles(self, articles: Sequence[Article]) -> None:
        with self._lock:
            for a in articles:
                self._catalog[a.article_id] = a

    def remove_article(self, article_id: str) -> bool:
        with self._lock:
            return self._catalog.pop(article_id, None) is not None

    def _live(self, now: float) -> list[Article]:
        with self._lock:
            arts = list(self._catalog.values())
        return [a for a in arts if a.published_at.timestamp() <= now
                and (a.expires_at is None or a.expires_at.timestamp() > now)]

    def _rank(self, ctx: RequestContext, articles: list[Article], k: int, reason: str
              ) -> list[ScoredArticle]:
        if not articles or k <= 0:
            return []
        ids = [a.article_id for a in articles]
        scores = self.score(ctx, ids)
        order = np.argsort(-scores, kind="stable")[:k]
        return [ScoredArticle(ids[i], float(scores[i]), reason, self.name) for i in order]

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        cat = ctx.filters.get("category")
        arts = [a for a in self._live(ctx.now) if a.article_id not in ctx.exclude
                and (cat is None or a.category == cat)]
        return self._rank(ctx, arts, ctx.k, self.name)

    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        with self._lock:
            src = self._catalog.get(article_id)
        if src is None:
            return []
        arts = [a for a in self._live(now) if a.article_id != article_id
                and a.category == src.category]
        ctx = RequestContext(user_id="", now=now, k=k, current_article_id=article_id)
        return self._rank(ctx, arts, k, f"more in {src.category}")


class RandomRecommender(CatalogRecommender):
    """Uniform random scores from a seeded generator (deterministic for a call sequence)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._rng.random(len(article_ids))


class StreamingCTRRecommender(CatalogRecommender):
    """Smoothed click-through rate from decayed counts in the online store.

    score = (decayed_clicks + strength * prior_ctr) / (decayed_impressions + strength)

    The Beta-prior smoothing keeps a new article with no impressions at the prior instead of
    0 or 1, and decay (the store's half-life) lets yesterday's hits fade.
    """

    name = "streaming_ctr"

    def __init__(self, store: OnlineStore, *, prior_ctr: float = 0.04,
                 prior_strength: float = 10.0) -> None:
        if not 0.0 < prior_ctr < 1.0:
            raise ValueError(f"prior_ctr must lie in (0, 1); got {prior_ctr}")
        if prior_strength <= 0:
            raise ValueError(f"prior_strength must be positive; got {prior_strength}")
        super().__init__()
        self.store = store
        self.prior_ctr = prior_ctr
        self.prior_strength = prior_strength

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        if not article_ids:
            return np.zeros(0)
        stats = self.store.article_stats(list(article_ids), ctx.now)
        clicks = np.fromiter((s.decayed_clicks for s in stats), dtype=np.float64)
        imps = np.fromiter((s.decayed_impressions for s in stats), dtype=np.float64)
        return (clicks + self.prior_strength * self.prior_ctr) / (imps + self.prior_strength)


class MostPopular(CatalogRecommender):
    """Static popularity: click counts from a training period (unknown ids score 0)."""

    name = "most_popular"

    def __init__(self) -> None:
        super().__init__()
        self.counts_: dict[str, float] = {}

    def fit(self, clicked_ids: Iterable[str]) -> MostPopular:
        """Learn counts from an iterable of clicked article ids (one per click)."""
        self.counts_ = {k: float(v) for k, v in Counter(clicked_ids).items()}
        return self

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.counts_.get(a, 0.0) for a in article_ids), dtype=np.float64,
                           count=len(article_ids))
