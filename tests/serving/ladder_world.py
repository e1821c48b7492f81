"""A tiny world for the live-experiment tests: readers who like some categories, models that
serve chosen categories, and a seeded click model, so arms differ by a known amount."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from newsdesk.data.schema import Article
from newsdesk.features.online_store import OnlineStore
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle

# click probability of a shown article by its category (every reader alike)
APPEAL = {"news": 0.30, "sports": 0.20, "finance": 0.10, "tech": 0.01}


class CategoryModel(Recommender):
    """Ranks the catalog by a fixed category order (newest first within a category)."""

    def __init__(self, version: str, categories: Sequence[str], articles: list[Article]) -> None:
        self.version = version
        order = {c: i for i, c in enumerate(categories)}
        ranked = sorted((a for a in articles if a.category in order),
                        key=lambda a: (order[a.category], -a.published_at.timestamp()))
        self._ranked = [a.article_id for a in ranked]

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        out = [a for a in self._ranked if a not in ctx.exclude][: ctx.k]
        return [ScoredArticle(a, 1.0 / (i + 1), "test", "test") for i, a in enumerate(out)]

    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        return []

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        return np.zeros(len(article_ids))

    def upsert_articles(self, articles: Sequence[Article]) -> None:
        return None

    def remove_article(self, article_id: str) -> bool:
        return False


# version -> category order it serves
MODELS = {"good": ("news", "sports", "finance", "tech"),
          "fair": ("sports", "news", "finance", "tech"),
          "broken": ("tech",)}


def category_factory(articles: list[Article]) -> Callable[[str | None, OnlineStore], Recommender]:
    def make(version: str | None, store: OnlineStore) -> Recommender:
        name = version or "good"
        return CategoryModel(name, MODELS.get(name, MODELS["good"]), articles)

    return make


def show(client: httpx.Client | Any, body: dict[str, Any], user: str, rng: np.random.Generator,
         category: dict[str, str]) -> list[int]:
    """Clicked positions of one served slate under APPEAL (seeded rng)."""
    p = np.array([APPEAL[category[it["article_id"]]] for it in body["items"]])
    return [int(i) for i in np.flatnonzero(rng.random(len(p)) < p)]


def click_events(body: dict[str, Any], user: str, positions: list[int]) -> list[dict[str, Any]]:
    return [{"type": "click", "event_id": f"{body['request_id']}-{p}", "user_id": user,
             "article_id": body["items"][p]["article_id"], "request_id": body["request_id"]}
            for p in positions]


def article_categories(articles: list[Article]) -> dict[str, str]:
    return {a.article_id: str(a.category) for a in articles}


def unused(_: Path) -> None:  # keeps the module importable without pytest collecting it
    return None
