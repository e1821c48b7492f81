"""`newsdesk experiment ope`: a candidate bundle's CTR estimated from a dataset's served logs.

    run_ope(dataset_dir, bundle_dir) -> {"estimates": {"ips", "snips", "dr"}, "diagnostics"...}

1. The explored slates: impressions whose `policy` is a Plackett-Luce draw (served by
   `newsdesk.serving.exploration`, propensities = exact per-position marginals), with their
   clicks (interactions attributed by request_id).
2. What the candidate would have served on each of those requests: the dataset's events are
   replayed in time order through a fresh online store (`newsdesk.evaluation.replay`, the
   non-leaky order), and at each explored impression the candidate's `recommend` answers the
   same request (user, time, surface, k) from the state known then; its ranker also scores
   the logged items and its own (the reward model of DR).
3. Per-position IPS, SNIPS and DR with CIs clustered by slate (`slate_ope`).

Deterministic slates (propensity 1.0) are not used: the logging policy had no support for any
other slate there, so they say nothing about a different ranking.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from newsdesk.errors import InvalidInput
from newsdesk.experiments.slate_ope import SlateLog, evaluate, from_slates, summary
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle

PL_PREFIX = "plackett_luce"


class _Capture(Recommender):
    """Wraps the candidate during the replay: at each explored impression it records the
    candidate's own slate and its scores of both slates (the replay's scores are unused)."""

    def __init__(self, inner: Recommender, explored: set[tuple[str, int]]) -> None:
        self.inner = inner
        self.explored = explored
        self.version = getattr(inner, "version", "candidate")
        self.slates: dict[tuple[str, int], tuple[list[str], np.ndarray, np.ndarray]] = {}

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        key = (ctx.user_id, round(ctx.now * 1e6))
        if key in self.explored:
            own = [it.article_id for it in self.inner.recommend(ctx)]
            both = self.inner.score(ctx, [*article_ids, *own]) if own else \
                self.inner.score(ctx, list(article_ids))
            n = len(article_ids)
            self.slates[key] = (own, np.asarray(both[:n], float), np.asarray(both[n:], float))
        return np.zeros(len(article_ids))

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        return self.inner.recommend(ctx)

    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        return self.inner.related(article_id, k, now)

    def upsert_articles(self, articles: Sequence[Any]) -> None:
        # the replay re-publishes every article of the dataset; the bundle already holds (and
        # has embedded) those it was trained with: embedding them again costs minutes
        catalog = getattr(getattr(self.inner, "ws", None), "catalog", None)
        known = getattr(catalog, "index", None)
        new = [a for a in articles if known is None or a.article_id not in known]
        if new:
            self.inner.upsert_articles(new)

    def remove_article(self, article_id: str) -> bool:
        return self.inner.remove_article(article_id)


def explored_slates(dataset: Any) -> pl.DataFrame:
    """Explored impressions with their clicked article ids, in time order."""
    imps = (dataset.scan("impressions")
            .filter(pl.col("policy").str.starts_with(PL_PREFIX))
            .select("request_id", "user_id", "timestamp", "surface", "article_ids",
                    "propensities", "policy"))
    clicks = (dataset.scan("interactions")
              .filter((pl.col("type") == "click") & pl.col("request_id").is_not_null())
              .group_by("request_id").agg(pl.col("article_id").alias("clicked")))
    return imps.join(clicks, on="request_id", how="left").sort("timestamp").collect()


def build_log(dataset_dir: Path, candidate: Recommender, store: Any) -> tuple[SlateLog, dict]:
    """Replay the dataset through `store`, asking `candidate` at each explored impression."""
    from newsdesk.data.dataset import Dataset
    from newsdesk.evaluation.replay import build_events, replay_events

    ds = Dataset(dataset_dir)
    frame = explored_slates(ds)
    if frame.height == 0:
        raise InvalidInput(f"{dataset_dir}: no explored slates (impressions with policy "
                           f"'{PL_PREFIX}(...)'); serve with NEWSDESK_EXPLORATION_SHARE > 0 "
                           "and export the event log", field="dataset")
    keys = [(u, round(ts.timestamp() * 1e6))
            for u, ts in zip(frame["user_id"], frame["timestamp"], strict=True)]
    capture = _Capture(candidate, set(keys))
    first = frame["timestamp"][0].timestamp()
    replay_events(build_events(ds, score_from=first), {"candidate": capture}, store)
    logged, target, clicks, props, s_log, s_tgt = [], [], [], [], [], []
    missing = 0
    for key, ids, p, clicked in zip(keys, frame["article_ids"].to_list(),
                                    frame["propensities"].to_list(),
                                    frame["clicked"].to_list(), strict=True):
        got = capture.slates.get(key)
        if got is None or not got[0]:
            missing += 1
            continue
        own, sc_logged, sc_own = got
        n = min(len(ids), len(own))
        clicked_set = set(clicked or [])
        logged.append(list(ids)[:n])
        target.append(own[:n])
        clicks.append([a in clicked_set for a in list(ids)[:n]])
        props.append(list(p)[:n])
        s_log.append(sc_logged[:n])
        s_tgt.append(sc_own[:n])
    log = from_slates(logged, target, clicks, props, s_log, s_tgt)
    policies = frame["policy"].value_counts(sort=True).rows()
    return log, {"explored_impressions": frame.height, "not_answered": missing,
                 "policies": {str(p): int(c) for p, c in policies}}


def load_candidate(bundle: Path) -> tuple[Recommender, Any]:
    """The bundle's recommender and a fresh memory store with the bundle's half-life."""
    from newsdesk.models.bundle import load_recommender, offline_store

    store = offline_store(bundle)
    return load_recommender(bundle, store), store


def run_ope(dataset_dir: Path, bundle: Path, alpha: float = 0.05) -> dict[str, Any]:
    """Estimates of the bundle's CTR (clicks per shown item) with (1 - alpha) CIs."""
    if not 0 < alpha < 1:
        raise InvalidInput(f"alpha must be in (0, 1), got {alpha}", field="alpha")
    candidate, store = load_candidate(Path(bundle))
    log, meta = build_log(Path(dataset_dir), candidate, store)
    estimates = evaluate(log, alpha)
    return {"dataset": str(dataset_dir), "bundle": str(bundle),
            "candidate_version": getattr(candidate, "version", None), "alpha": alpha,
            "estimand": "CTR of the candidate: clicks per shown item",
            "estimates": {k: _clean(dataclasses.asdict(v)) for k, v in estimates.items()},
            "diagnostics": {**summary(log), **meta}}


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}
