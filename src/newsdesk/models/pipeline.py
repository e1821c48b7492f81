"""`NewsRecommender`: candidates -> features -> LightGBM ranker -> re-ranking rules.

Per request: one read of the user's clicks (a `UserView`), every generator proposes up to its
quota of live candidates (a few hundred in total), the article statistics of the union come
from the online store in one call, `FeatureBuilder.build` (the training code) makes the
feature matrix, the ranker scores it, and the surface's rules pick the final k. Each item's
reason comes from the generator that proposed it with the best rank.

What makes the call cheap (benchmarks/recommend_path.py), none of it changing a result: the
live set and what generators derive from it are cached per live set (`candidates.live`); the
user's profile is computed once and shared by the generators and the features; the feature
code has single-user paths that repeat the general code's arithmetic bit for bit (tested
against it); the ranker is compiled by lleaves when available (`models.compiled_ranker`,
scores within 1e-15 of LightGBM's). `stage_timer` (`models.timing`) reads the time per stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import Protocol

import numpy as np

from newsdesk.content.embedder import Embedder
from newsdesk.data.schema import Article
from newsdesk.features import dismissals
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
from newsdesk.models.timing import StageTimer


class DriftSink(Protocol):
    def observe(self, x: np.ndarray, scores: np.ndarray) -> None: ...


WARM_UP_READER = "__warm-up__"  # the synthetic reader of `warm` (never in the store)


class NewsRecommender(Recommender):
    """A loaded pipeline (see the module docstring); build it with `models.bundle`."""

    handles_dismissals = True  # left out of the candidates, similar items demoted

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
        self.stage_timer: StageTimer | None = None  # see models.timing

    def warm(self, now: float | None = None) -> None:
        """Do at load what the first requests would otherwise do on the request path: the
        content search's projection basis (a PCA over a catalog sample: about a second at
        100k articles, which at 200 req/s would pile up a few hundred requests), and with
        `now` one request's worth of the per-live-set work (the live set, trending, the
        projected live embeddings, category orders) for a synthetic reader whose history is
        the last five live articles in catalog order. Nothing is written to the store."""
        if self.content is not None and self.ws.catalog.size >= self.content.projected_min_live:
            self.content.basis()
        if now is None:
            return
        live = self.ws.live_set(now)
        n = self.ws.builder.recent_clicks
        take = live.indices[-min(5, n, len(live.indices)):] if n else live.indices[:0]
        if len(take) == 0:
            return
        idx = np.full(n, -1, dtype=np.int64)
        ts = np.full(n, np.nan)
        idx[: len(take)], ts[: len(take)] = take, now - 3600.0
        profile, affinity = self.ws.builder.user_profiles(self.ws.catalog, idx[None, :])
        view = UserView(WARM_UP_READER, now, idx, ts, profile[0], affinity[0], live.indices,
                        live)
        self._recommend_view(view, RequestContext(user_id=WARM_UP_READER, now=now, k=20),
                             perf_counter())

    def prepare_live_set(self, now: float, lookahead_s: float = 1.0) -> bool:
        """Build the next live set ahead of its time boundary (serving's background thread;
        see candidates.live), so no request pays for it. True if it built one."""
        return self.ws.live_sets.prepare(now, lookahead_s)

    # -- features (the online half of train/serve parity) ---------------------------------------
    def inputs(self, view: UserView, idx: np.ndarray, ids: Sequence[str],
               positions: np.ndarray | None = None) -> RankingInputs:
        """RankingInputs of one user and the given candidates (catalog idx, -1 = unknown;
        `ids` are read only when some idx is -1: their statistics are keyed by id)."""
        idx = np.asarray(idx, dtype=np.int64)
        stats = (self.ws.article_stats(idx, view.now) if len(idx) and idx.min() >= 0
                 else self.ws.store.stats_matrix(list(ids), view.now))  # ids outside the catalog
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
            exposure_idx=(None if view.exposure_idx is None else view.exposure_idx[None, :]),
        )

    def features(self, ctx: RequestContext, article_ids: Sequence[str],
                 positions: np.ndarray | None = None) -> np.ndarray:
        """Feature matrix (len(article_ids), F) exactly as the ranker sees it online."""
        view = self.ws.view(ctx.user_id, ctx.now)
        idx = self.ws.catalog.lookup(article_ids)
        return self._build(view, idx, article_ids, positions)

    def _build(self, view: UserView, idx: np.ndarray, ids: Sequence[str],
               positions: np.ndarray | None = None, emb: np.ndarray | None = None
               ) -> np.ndarray:
        return self.ws.builder.build(self.inputs(view, idx, ids, positions), self.ws.catalog,
                                     coclick=self.coclick, cf=self.cf,
                                     profiles=(view.profile[None, :], view.affinity[None, :]),
                                     article_embeddings=emb)

    # -- Recommender ----------------------------------------------------------------------------
    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        if len(article_ids) == 0:
            return np.zeros(0)
        return self.ranker.predict(self.features(ctx, article_ids))

    def candidate_pool(self, view: UserView) -> tuple[np.ndarray, list[str]]:
        """Union of all generators' proposals: (catalog indices, proposing generator names)."""
        idx, gen = self._pool(view)
        return idx, [self.generators[g].name for g in gen.tolist()]

    def _pool(self, view: UserView) -> tuple[np.ndarray, np.ndarray]:
        """(catalog indices in order of first proposal, position in `generators` of the one
        that proposed each with the best rank; the earlier generator on equal ranks)."""
        parts = [g.propose(view, self.quotas.get(g.name, 100))[0] for g in self.generators]
        sizes = [len(p) for p in parts]
        if sum(sizes) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        allidx = np.concatenate(parts).astype(np.int64, copy=False)
        gen = np.repeat(np.arange(len(parts)), sizes)
        rank = np.concatenate([np.arange(n) for n in sizes])
        by_best = np.lexsort((gen, rank, allidx))  # per index: best (rank, generator) first
        first = np.ones(len(by_best), dtype=bool)
        first[1:] = allidx[by_best[1:]] != allidx[by_best[:-1]]
        best = by_best[first]  # one entry per index, ascending index
        uniq, first_pos = np.unique(allidx, return_index=True)  # ascending index too
        order = np.argsort(first_pos)  # order of first appearance, as the dict kept it
        return uniq[order], gen[best][order]

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        t0 = perf_counter()
        return self._recommend_view(self.ws.view(ctx.user_id, ctx.now), ctx, t0)

    def _recommend_view(self, view: UserView, ctx: RequestContext, t0: float
                        ) -> list[ScoredArticle]:
        rules = self.serving.for_surface(ctx.surface)
        idx, gen = self._pool(view)
        names = [g.name for g in self.generators] + ["content"]  # gen codes -> source name
        if ctx.current_article_id is not None and self.content is not None:
            cur = self.ws.catalog.index.get(ctx.current_article_id)
            if cur is not None:
                extra, _ = self.content.neighbours(cur, view.live, 50)
                new = extra[~np.isin(extra, idx)]
                idx = np.concatenate([idx, new])
                gen = np.concatenate([gen, np.full(len(new), len(names) - 1)])
                keep = idx != cur
                idx, gen = idx[keep], gen[keep]
        cat = self.ws.catalog
        # ids and category names only when a rule or filter reads them: fetching a few hundred
        # id strings scattered over the catalog's memory costs ~0.2 ms on a busy machine
        all_ids = ([cat.ids[i] for i in idx.tolist()] if rules.blocklist or ctx.exclude
                   else [])
        wanted = ctx.filters.get("category")
        cats = ([cat.categories[c] for c in cat.category[idx].tolist()]
                if rules.blocked_categories or wanted is not None else [])
        read = view.read_clicks  # never shown again: what the reader read or dismissed
        if len(view.dismissed_idx):
            read = np.concatenate([read, view.dismissed_idx[view.dismissed_idx >= 0]])
        ok = rerank.allowed(rules, idx=idx, ids=all_ids, published=cat.published[idx],
                            category_names=cats, read=read, now=ctx.now, exclude=ctx.exclude)
        if wanted is not None:
            ok &= np.array([n == wanted for n in cats], dtype=bool)
        keep = np.flatnonzero(ok)
        idx, gen = idx[keep], gen[keep]
        if len(idx) == 0:
            return []
        t1 = perf_counter()
        emb = cat.embeddings[idx]  # gathered once for the features and the re-ranking
        x = self._build(view, idx, (), emb=emb)  # every idx is in the catalog: ids unused
        t2 = perf_counter()
        scores = self.ranker.predict(x)
        t3 = perf_counter()
        if self.drift is not None:
            self.drift.observe(x, scores)
        known = view.dismissed_idx >= 0
        if known.any():  # what resembles a recent dismissal ranks lower (features.dismissals)
            d = view.dismissed_idx[known]
            scores = scores - dismissals.demotion(
                scores, cat.category[idx], emb, cat.category[d], cat.embeddings[d],
                (ctx.now - view.dismissed_ts[known]) / 3600.0)
        chosen = rerank.select(rules, scores, cat.category[idx], emb, ctx.k)
        by_name = {g.name: g for g in self.generators}
        out = []
        for p in chosen.tolist():
            i, src = int(idx[p]), names[gen[p]]
            reason = by_name[src].reason(view, i) if src in by_name else ""
            out.append(ScoredArticle(cat.ids[i], float(scores[p]), reason, src))
        timer = self.stage_timer
        if timer is not None:
            t4 = perf_counter()
            timer.record("candidates", t1 - t0)
            timer.record("features", t2 - t1)
            timer.record("score", t3 - t2)
            timer.record("rerank", t4 - t3)
        return out

    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        """Content neighbours blended with co-clicks (scaled to [0, 1]); live articles only."""
        cat = self.ws.catalog
        i = cat.index.get(article_id)
        if i is None:
            return []
        live = self.ws.live_set(now).indices  # neighbours() exclude i itself
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
