"""`NewsRecommender`: candidates -> features -> LightGBM ranker -> re-ranking rules.

Per request: one read of the user's clicks (a `UserView`), every generator proposes up to its
quota of live candidates (a few hundred in total), the article statistics of the union come
from the online store in one call, `FeatureBuilder.build` (the training code) makes the
feature matrix, the ranker scores it, and the surface's rules pick the final k. Each item's
reason comes from the generator that proposed it with the best rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from newsdesk.content.embedder import Embedder
from newsdesk.data.schema import Article
from newsdesk.features.ranking_features import RankingInputs
from newsdesk.models import rerank
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle
from newsdesk.models.candidates import (
    CoClickGenerator,
    CollaborativeGenerator,
    ContentGenerator,
    IndexedGenerator,
    UserView,
    Workspace,
)
from newsdesk.models.ranker import LambdaRanker


class DriftSink(Protocol):
    def observe(self, x: np.ndarray, scores: np.ndarray) -> None: ...


class NewsRecommender(Recommender):
    """A loaded pipeline (see the module docstring); build it with `models.bundle`."""

    def __init__(self, ws: Workspace, generators: Sequence[IndexedGenerator],
                 quotas: dict[str, int], ranker: LambdaRanker, serving: rerank.ServingConfig,
                 *, version: str = "dev", embedder: Embedder | None = None) -> None:
        self.ws = ws
        self.generators = list(generators)
        self.quotas = quotas
        self.ranker = ranker
        self.serving = serving
        self.version = version
        self.embedder = embedder
        self.coclick = next((g for g in generators if isinstance(g, CoClickGenerator)), None)
        self.cf = next((g for g in generators if isinstance(g, CollaborativeGenerator)), None)
        self.content = next((g for g in generators if isinstance(g, ContentGenerator)), None)
        self.drift: DriftSink | None = None  # set by serving: samples scored rows (PSI)

    # -- features (the online half of train/serve parity) ---------------------------------------
    def inputs(self, view: UserView, idx: np.ndarray, ids: Sequence[str],
               positions: np.ndarray | None = None) -> RankingInputs:
        """RankingInputs of one user and the given candidates (catalog idx, -1 = unknown)."""
        stats = self.ws.store.stats_matrix(list(ids), view.now)
        n = len(idx)
        return RankingInputs(
            click_idx=view.click_idx[None, :],
            click_ts=view.click_ts[None, :],
            user_ids=[view.user_id],
            row_query=np.zeros(n, dtype=np.int64),
            row_article=np.asarray(idx, dtype=np.int64),
            now=np.full(n, view.now),
            position=(np.full(n, self.ws.builder.serve_position) if positions is None
                      else np.asarray(positions, dtype=np.float64)),
            stats=stats,
        )

    def features(self, ctx: RequestContext, article_ids: Sequence[str],
                 positions: np.ndarray | None = None) -> np.ndarray:
        """Feature matrix (len(article_ids), F) exactly as the ranker sees it online."""
        view = self.ws.view(ctx.user_id, ctx.now)
        idx = self.ws.catalog.lookup(article_ids)
        return self._build(view, idx, article_ids, positions)

    def _build(self, view: UserView, idx: np.ndarray, ids: Sequence[str],
               positions: np.ndarray | None = None) -> np.ndarray:
        return self.ws.builder.build(self.inputs(view, idx, ids, positions), self.ws.catalog,
                                     coclick=self.coclick, cf=self.cf)

    # -- Recommender ----------------------------------------------------------------------------
    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        if len(article_ids) == 0:
            return np.zeros(0)
        return self.ranker.predict(self.features(ctx, article_ids))

    def candidate_pool(self, view: UserView) -> tuple[np.ndarray, list[str]]:
        """Union of all generators' proposals: (catalog indices, proposing generator names)."""
        best: dict[int, tuple[int, str]] = {}  # index -> (rank in its generator, generator)
        for g in self.generators:
            idx, _ = g.propose(view, self.quotas.get(g.name, 100))
            for rank, i in enumerate(idx.tolist()):
                if i not in best or rank < best[i][0]:
                    best[i] = (rank, g.name)
        keys = np.fromiter(best.keys(), dtype=np.int64, count=len(best))
        return keys, [best[int(i)][1] for i in keys]

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        rules = self.serving.for_surface(ctx.surface)
        view = self.ws.view(ctx.user_id, ctx.now)
        idx, sources = self.candidate_pool(view)
        if ctx.current_article_id is not None and self.content is not None:
            cur = self.ws.catalog.index.get(ctx.current_article_id)
            if cur is not None:
                extra, _ = self.content.neighbours(cur, view.live, 50)
                new = extra[~np.isin(extra, idx)]
                idx = np.concatenate([idx, new])
                sources += ["content"] * len(new)
                idx, sources = self._drop(idx, sources, idx == cur)
        cat = self.ws.catalog
        ids = [cat.ids[i] for i in idx]
        names = [cat.categories[c] for c in cat.category[idx]]
        ok = rerank.allowed(rules, idx=idx, ids=ids, published=cat.published[idx],
                            category_names=names, read=view.known_clicks, now=ctx.now,
                            exclude=ctx.exclude)
        wanted = ctx.filters.get("category")
        if wanted is not None:
            ok &= np.array([n == wanted for n in names], dtype=bool)
        idx, sources = self._drop(idx, sources, ~ok)
        if len(idx) == 0:
            return []
        ids = [cat.ids[i] for i in idx]
        x = self._build(view, idx, ids)
        scores = self.ranker.predict(x)
        if self.drift is not None:
            self.drift.observe(x, scores)
        chosen = rerank.select(rules, scores, cat.category[idx], cat.embeddings[idx], ctx.k)
        by_name = {g.name: g for g in self.generators}
        out = []
        for p in chosen:
            i, src = int(idx[p]), sources[p]
            reason = by_name[src].reason(view, i) if src in by_name else ""
            out.append(ScoredArticle(cat.ids[i], float(scores[p]), reason, src))
        return out

    @staticmethod
    def _drop(idx: np.ndarray, sources: list[str], drop: np.ndarray
              ) -> tuple[np.ndarray, list[str]]:
        keep = ~drop
        return idx[keep], [s for s, k in zip(sources, keep, strict=True) if k]

    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        """Content neighbours blended with co-clicks (scaled to [0, 1]); live articles only."""
        cat = self.ws.catalog
        i = cat.index.get(article_id)
        if i is None:
            return []
        live = cat.live_indices(now, self.ws.max_age_hours)  # neighbours() exclude i itself
        scores: dict[int, float] = {}
        sources: dict[int, str] = {}
        if self.content is not None:
            nidx, sims = self.content.neighbours(i, live, 4 * k)
            for j, s in zip(nidx.tolist(), sims.tolist(), strict=True):
                scores[j], sources[j] = s, "content"
        if self.coclick is not None:
            cidx, cnt = self.coclick.neighbours(i, live, 4 * k)
            if len(cnt):
                for j, s in zip(cidx.tolist(), (cnt / cnt.max()).tolist(), strict=True):
                    scores[j] = scores.get(j, 0.0) + 0.5 * s
                    sources[j] = "coclick"
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        title = cat.titles[i]
        return [ScoredArticle(cat.ids[j], float(s), f"related to {title}", sources[j])
                for j, s in ranked]

    def upsert_articles(self, articles: Sequence[Article]) -> None:
        self.ws.catalog.upsert(list(articles), self.embedder)

    def remove_article(self, article_id: str) -> bool:
        return self.ws.catalog.remove(article_id)
