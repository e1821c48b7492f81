"""Streaming replay: re-run the logged event stream in time order, as production saw it.

Every impression is ranked using only what was known before it:

* an article becomes known at its publish time (`Recommender.upsert_articles`);
* an impression is scored by every system FIRST, then counted (`store.record_impressions`);
* a click is written (`store.record_clicks`) at its own time, never before the impression that
  showed it, so an impression's own clicks are invisible when it is scored.

Ties in time are broken article < impression < click, which is the non-leaky order: a click
logged at the same second as an impression is still applied after it. One store is shared by
all systems because only the driver writes to it, so every system sees identical state.

    replay_events(events, systems, store)   drive an explicit, already-ordered event list
    build_events(dataset, ...)              the dataset's events in the correct order
    replay(dataset, systems, store, ...)    both, scoring impressions in [score_from, score_until)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.data.schema import Article
from newsdesk.evaluation.mind_protocol import (
    ImpressionEvaluation,
    LabeledImpression,
    context_for,
    labeled_impressions,
)
from newsdesk.features.online_store import OnlineStore
from newsdesk.models.base import Recommender
from newsdesk.models.personal_ctr import ReaderExposures

_ARTICLE, _IMPRESSION, _CLICK = 0, 1, 2  # tie order at equal timestamps


@dataclass(frozen=True, slots=True)
class ArticleEvent:
    ts: float
    article: Article


@dataclass(frozen=True, slots=True)
class ImpressionEvent:
    ts: float
    impression: LabeledImpression
    scored: bool = True  # False: warm-up impressions only feed the store


@dataclass(frozen=True, slots=True)
class ClickEvent:
    ts: float
    user_id: str
    article_ids: tuple[str, ...]


Event = ArticleEvent | ImpressionEvent | ClickEvent


def replay_events(events: Iterable[Event], systems: dict[str, Recommender],
                  store: OnlineStore | Sequence[OnlineStore], *,
                  progress: Callable[[int], None] | None = None
                  ) -> dict[str, ImpressionEvaluation]:
    """Apply events in the given order; score each scored impression before recording it.

    The order is trusted as given (see `build_events` for the correct one); consecutive article
    events are upserted as one batch. Several stores (e.g. with different half-lives for
    systems trained with different settings) all receive every event.
    """
    stores = [store] if isinstance(store, OnlineStore) else list(store)
    evals = {name: ImpressionEvaluation(name) for name in systems}
    pending: list[Article] = []
    n_scored = 0

    def flush_articles() -> None:
        if pending:
            for rec in systems.values():
                rec.upsert_articles(list(pending))
            pending.clear()

    for ev in events:
        if isinstance(ev, ArticleEvent):
            pending.append(ev.article)
            continue
        flush_articles()
        if isinstance(ev, ImpressionEvent):
            imp = ev.impression
            if ev.scored:
                ctx = context_for(imp)
                for name, rec in systems.items():
                    evals[name].add(imp, rec.score(ctx, imp.article_ids))
                n_scored += 1
                if progress is not None and n_scored % 1000 == 0:
                    progress(n_scored)
            for st in stores:
                st.record_impressions(list(imp.article_ids), ev.ts)
                # the reader's exposure list (stores that keep them; story_exposures)
                st.record_exposures(imp.user_id, imp.article_ids, ev.ts)
                if isinstance(st, ReaderExposures):  # stores that also learn who saw what
                    st.record_exposure(imp.user_id, imp.article_ids, ev.ts)
        else:
            for st in stores:
                st.record_clicks(ev.user_id, list(ev.article_ids), ev.ts)
    flush_articles()
    return evals


def _articles(dataset: Dataset) -> list[Article]:
    out = []
    for row in dataset.read("articles").iter_rows(named=True):
        row = {k: v for k, v in row.items() if v is not None}
        out.append(Article.model_validate(row))
    return out


def _click_events(dataset: Dataset, impression_ts: dict[str, float], *, until: float | None
                  ) -> list[ClickEvent]:
    """Clicks at their own time, but never before the impression they are attributed to."""
    frame = (dataset.scan("interactions").filter(pl.col("type") == "click")
             .select("user_id", "article_id", "timestamp", "request_id")
             .sort("timestamp").collect())
    grouped: dict[tuple[str, float], list[str]] = {}
    for user, article, ts, request_id in frame.iter_rows():
        t = ts.timestamp()
        if request_id is not None and request_id in impression_ts:
            t = max(t, impression_ts[request_id])
        if until is not None and t >= until:
            continue
        grouped.setdefault((user, t), []).append(article)
    return [ClickEvent(t, user, tuple(ids)) for (user, t), ids in grouped.items()]


def build_events(dataset: Dataset, *, score_from: float | None = None,
                 score_until: float | None = None, seed_histories: bool = True) -> list[Event]:
    """All events of a dataset in the non-leaky replay order.

    Impressions before `score_from` are warm-up (they feed the store but are not scored);
    events from `score_until` on are dropped. Pre-period user histories (the `histories`
    table) are written as clicks just before the first event when `seed_histories`.
    """
    imps = list(labeled_impressions(dataset, end=score_until))
    imp_ts = {imp.impression_id: imp.ts for imp in imps}
    keyed: list[tuple[float, int, int, Event]] = []
    seq = 0
    for art in _articles(dataset):
        ts = art.published_at.timestamp()
        if score_until is None or ts < score_until:
            keyed.append((ts, _ARTICLE, seq, ArticleEvent(ts, art)))
            seq += 1
    for imp in imps:
        scored = score_from is None or imp.ts >= score_from
        keyed.append((imp.ts, _IMPRESSION, seq, ImpressionEvent(imp.ts, imp, scored)))
        seq += 1
    for click in _click_events(dataset, imp_ts, until=score_until):
        keyed.append((click.ts, _CLICK, seq, click))
        seq += 1
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    events: list[Event] = [k[3] for k in keyed]
    if seed_histories:
        events = history_events(dataset, keyed[0][0] if keyed else 0.0) + events
    return events


def history_events(dataset: Dataset, first_ts: float) -> list[Event]:
    """Pre-period user histories as clicks just before `first_ts` (or at their as_of if earlier).
    """
    seeds: list[Event] = []
    if not dataset.count("histories"):
        return seeds
    for row in dataset.read("histories").iter_rows(named=True):
        if row["article_ids"]:
            as_of = row["as_of"].timestamp() if row["as_of"] is not None else first_ts - 1.0
            seeds.append(ClickEvent(min(as_of, first_ts - 1.0), row["user_id"],
                                    tuple(row["article_ids"])))
    return seeds


def replay(dataset: Dataset, systems: dict[str, Recommender],
           store: OnlineStore | Sequence[OnlineStore], *,
           score_from: float | None = None, score_until: float | None = None,
           seed_histories: bool = True, progress: Callable[[int], None] | None = None
           ) -> dict[str, ImpressionEvaluation]:
    """Replay a dataset through `store` and score impressions in [score_from, score_until)."""
    events = build_events(dataset, score_from=score_from, score_until=score_until,
                          seed_histories=seed_histories)
    return replay_events(events, systems, store, progress=progress)


def day_bounds(dataset: Dataset) -> list[tuple[float, float]]:
    """UTC calendar days covered by the impressions, as [start, end) Unix-second pairs."""
    frame = dataset.scan("impressions").select(
        pl.col("timestamp").dt.truncate("1d").alias("day")).unique().sort("day").collect()
    return [(d.timestamp(), d.timestamp() + 86_400.0) for d in frame["day"]]


def last_day_window(dataset: Dataset) -> tuple[float, float]:
    """[start, end) of the last UTC day with impressions (the usual replay test day)."""
    days = day_bounds(dataset)
    if not days:
        raise ValueError("the dataset has no impressions to replay")
    return days[-1]

