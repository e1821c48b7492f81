"""Contracts of the recommendation models (the plug points of the multi-stage recommender).

    CandidateGenerator  fit on a dataset, then propose candidates for a request
    Recommender         the whole pipeline loaded from a bundle: candidates -> rank -> re-rank

The serving layer and the evaluation harness depend only on these classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from newsdesk.data.schema import Article


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What is known about one recommendation request."""

    user_id: str
    now: float  # Unix seconds, UTC
    surface: str = "front_page"
    k: int = 10
    current_article_id: str | None = None  # article page / related articles
    locale: str | None = None
    device: str | None = None
    exclude: frozenset[str] = frozenset()  # ids the caller never wants (e.g. blocklist)
    filters: dict[str, Any] = field(default_factory=dict)  # e.g. {"category": "sports"}


@dataclass(frozen=True, slots=True)
class ScoredArticle:
    article_id: str
    score: float
    reason: str = ""  # short human explanation: "trending in Politics", "because you read ..."
    source: str = ""  # the candidate generator that proposed it


class CandidateGenerator(ABC):
    """One source of candidates (trending, recency, content, co-clicks, CF, category)."""

    name: str

    @abstractmethod
    def candidates(self, ctx: RequestContext, n: int) -> list[ScoredArticle]:
        """Up to n candidates for the request, best first."""


class Recommender(ABC):
    """A loaded pipeline; thread-safe for concurrent `recommend` calls.

    A recommender reads real-time state from the `OnlineStore` it was built with (user clicks,
    article statistics), and keeps its own live catalog (article metadata, embeddings, ANN
    index). Whoever owns the event stream (the serving app, the replay evaluator) writes events
    to the online store and catalog changes through `upsert_articles` / `remove_article`; the
    recommender never reads the future because it only sees what was written before the call.
    """

    version: str
    # True when `recommend` itself leaves out the reader's dismissals (features.dismissals);
    # otherwise the serving pipeline reads them and filters the slate
    handles_dismissals: bool = False

    @abstractmethod
    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        """Up to ctx.k ranked articles for the request (may return fewer)."""

    @abstractmethod
    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        """Articles related to one article (content + co-clicks)."""

    @abstractmethod
    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        """Ranking scores (higher is better) for given ids, shape (len(article_ids),).

        Used by the MIND protocol and the replay evaluator, which rank a logged impression's
        own slate; unknown ids get a finite score (cold start), never an error.
        """

    @abstractmethod
    def upsert_articles(self, articles: Sequence[Article]) -> None:
        """Add or update live articles (embedded on the way in); recommendable on return."""

    @abstractmethod
    def remove_article(self, article_id: str) -> bool:
        """Remove an article from the live catalog at once; False if it was unknown."""
