"""The gate's streaming replay, with the store writes between scored impressions batched.

    sampled_replay(dataset, start, end, systems, stores, warmup_hours=72, max_scored=5000,
                   seed=0) -> {system: ImpressionEvaluation}

Same protocol as `evaluation.replay.replay_events` over `build_events` (what the gate ran
before; the test suite checks that both give the same per-impression metrics): events in
time order, ties article < impression < click; histories as clicks before the first event;
clicks at their own time but never before the impression they are attributed to; every
impression and click from `warmup_hours` before the window on feeds the stores, every article
published before the window's end is upserted; at most `max_scored` impressions of the window
[start, end) are scored (a seeded uniform sample: the same sample as before), each by every
system before it is recorded.

What changed is the cost, not the state each scored impression sees:

* only the scored impressions become Python objects; the others stay Polars / numpy arrays;
* the impressions and clicks between two scored impressions reach the stores as one batch
  (`features.bulk_apply`, the state event-by-event writes leave), so the 72 h warm-up of a
  1M-impression log is one vectorised write instead of ~6M `record_impressions` calls;
* events after the last scored impression are not replayed (nothing reads them);
* a NewsRecommender's features are taken at each scored impression's time, and its ranker
  scores them in one call per `PREDICT_CHUNK` impressions (the same scores, row by row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.evaluation.mind_protocol import (
    ImpressionEvaluation,
    LabeledImpression,
    context_for,
)
from newsdesk.evaluation.replay import _articles, history_events
from newsdesk.features.bulk_apply import EventBatch, apply_batch
from newsdesk.features.online_store import OnlineStore
from newsdesk.features.ranking_features import FEATURE_NAMES
from newsdesk.models.base import Recommender

PREDICT_CHUNK = 2000  # scored impressions per ranker call (bounds the held feature rows)


def _us(col: str) -> pl.Expr:
    return pl.col(col).dt.epoch("us")


def _impressions(ds: Dataset, since: float, end: float) -> pl.DataFrame:
    """Impressions with since <= ts < end, labelled, in replay order (time, request id)."""
    imps = (ds.scan("impressions")
            .filter(_us("timestamp") < int(end * 1e6))
            .select("request_id", "user_id", "timestamp", "surface", "article_ids")
            .with_columns(ts=_us("timestamp").cast(pl.Float64) / 1e6))
    clicks = (ds.scan("interactions")
              .filter((pl.col("type") == "click") & pl.col("request_id").is_not_null())
              .group_by("request_id").agg(pl.col("article_id").alias("clicked")))
    frame = (imps.join(clicks, on="request_id", how="left")
             .sort(["timestamp", "request_id"]).collect())
    return frame.filter(pl.col("ts") >= since)


def _clicks(ds: Dataset, since: float, end: float) -> pl.DataFrame:
    """Click events (user, article, t) with since <= t < end, in replay order: t is the click's
    time, or its impression's when that is later (a click never precedes what it clicked)."""
    imp_ts = (ds.scan("impressions").filter(_us("timestamp") < int(end * 1e6))
              .select("request_id", imp_t=_us("timestamp").cast(pl.Float64) / 1e6))
    frame = (ds.scan("interactions").filter(pl.col("type") == "click")
             .select("user_id", "article_id", "timestamp", "request_id")
             .sort("timestamp", maintain_order=True)
             .with_row_index("seq")
             .join(imp_ts, on="request_id", how="left")
             .with_columns(t=pl.max_horizontal(_us("timestamp").cast(pl.Float64) / 1e6,
                                               pl.col("imp_t").fill_null(-np.inf)))
             .filter((pl.col("t") < end) & (pl.col("t") >= since))
             .sort(["t", "seq"]).collect())
    return frame.select("user_id", "article_id", "t")


def _codes(values: pl.Series, vocab: pl.DataFrame, name: str) -> np.ndarray:
    frame = pl.DataFrame({name: values}).join(vocab, on=name, how="left", maintain_order="left")
    return frame["code"].to_numpy().astype(np.int64)


def _vocab(name: str, *series: pl.Series) -> pl.DataFrame:
    values = pl.concat([s.cast(pl.String).rename(name) for s in series]).unique(
        maintain_order=True)
    return pl.DataFrame({name: values, "code": np.arange(len(values), dtype=np.int64)})


def sampled_replay(dataset_dir: str | Path, start: float, end: float,
                   systems: dict[str, Recommender], stores: Sequence[OnlineStore], *,
                   warmup_hours: float | None, max_scored: int, seed: int,
                   progress: Callable[[int], None] | None = None
                   ) -> dict[str, ImpressionEvaluation]:
    """Replay [start - warmup, end) and score a sample of the impressions in [start, end)."""
    ds = Dataset(dataset_dir)
    since = -np.inf if warmup_hours is None else start - warmup_hours * 3600.0
    imps = _impressions(ds, since, end)
    clicks = _clicks(ds, since, end)
    articles = [a for a in _articles(ds) if a.published_at.timestamp() < end]
    art_ts = np.array([a.published_at.timestamp() for a in articles], np.float64)
    order = np.argsort(art_ts, kind="stable")  # dataset order among equal times
    articles = [articles[i] for i in order]
    art_ts = art_ts[order]

    imp_ts = imps["ts"].to_numpy()
    scored = np.flatnonzero(imp_ts >= start)
    if len(scored) > max_scored:
        rng = np.random.default_rng(seed)
        scored = scored[np.sort(rng.choice(len(scored), max_scored, replace=False))]

    # histories: clicks just before the first event (as `build_events` seeds them)
    firsts = [x for x in (art_ts[:1], imp_ts[:1], clicks["t"].to_numpy()[:1]) if len(x)]
    first_ts = float(min(x[0] for x in firsts)) if firsts else 0.0
    hist = [(e.user_id, a, e.ts) for e in history_events(ds, first_ts)
            for a in e.article_ids]  # type: ignore[union-attr]
    h_user = pl.Series([u for u, _, _ in hist], dtype=pl.String)
    h_art = pl.Series([a for _, a, _ in hist], dtype=pl.String)
    h_ts = np.array([t for _, _, t in hist], np.float64)

    shown = imps.select(pl.int_range(pl.len()).alias("q"), "ts", "article_ids").explode(
        "article_ids").drop_nulls("article_ids")
    art_vocab = _vocab("article_id", shown["article_ids"], clicks["article_id"], h_art)
    user_vocab = _vocab("user_id", clicks["user_id"], h_user)
    row_q = shown["q"].to_numpy()
    row_key = _codes(shown["article_ids"], art_vocab, "article_id")
    row_ts = shown["ts"].to_numpy()
    row_bounds = np.searchsorted(row_q, np.arange(len(imps) + 1))
    c_user = np.concatenate([_codes(h_user, user_vocab, "user_id"),
                             _codes(clicks["user_id"], user_vocab, "user_id")])
    c_key = np.concatenate([_codes(h_art, art_vocab, "article_id"),
                            _codes(clicks["article_id"], art_vocab, "article_id")])
    c_ts = np.concatenate([h_ts, clicks["t"].to_numpy()])
    click_t = clicks["t"].to_numpy()
    ids = art_vocab["article_id"].to_list()
    users = user_vocab["user_id"].to_list()

    # systems that expose their features and ranker (NewsRecommender) are scored by one ranker
    # call per `PREDICT_CHUNK` impressions: the features are taken at each impression's time,
    # and a tree ensemble scores each row on its own, so the scores are those of `score()`
    deferred = {name for name, rec in systems.items()
                if callable(getattr(rec, "features", None)) and hasattr(rec, "ranker")}
    evals = {name: ImpressionEvaluation(name) for name in systems}
    pending: list[LabeledImpression] = []
    held: dict[str, list[np.ndarray]] = {name: [] for name in systems}

    def flush() -> None:
        sizes = np.cumsum([len(i.article_ids) for i in pending])[:-1]
        for name, rec in systems.items():
            parts = held[name]
            if name in deferred and pending:
                x = np.concatenate(parts)
                ranker = rec.ranker  # type: ignore[attr-defined]
                scores = (np.asarray(ranker.predict(x), dtype=np.float64) if len(x)
                          else np.zeros(0))
                parts = np.split(scores, sizes)
            for imp, sc in zip(pending, parts, strict=True):
                evals[name].add(imp, sc)
            held[name] = []
        pending.clear()

    a_done = r_done = c_done = 0
    rows = imps.select("request_id", "user_id", "ts", "surface", "article_ids", "clicked")
    for n, q in enumerate(scored.tolist(), start=1):
        row = rows.row(q, named=True)
        t = float(row["ts"])
        a_hi = int(np.searchsorted(art_ts, t, side="right"))  # articles first on ties
        if a_hi > a_done:
            for rec in systems.values():
                rec.upsert_articles(articles[a_done:a_hi])
            a_done = a_hi
        r_hi = int(row_bounds[q])  # every earlier impression, scored ones included
        c_hi = len(hist) + int(np.searchsorted(click_t, t, side="left"))  # clicks after ties
        batch = EventBatch(ids=ids, users=users, imp_key=row_key[r_done:r_hi],
                           imp_ts=row_ts[r_done:r_hi], click_user=c_user[c_done:c_hi],
                           click_key=c_key[c_done:c_hi], click_ts=c_ts[c_done:c_hi])
        for st in stores:
            apply_batch(st, batch)
        r_done, c_done = r_hi, c_hi
        clicked = set(row["clicked"] or ())
        article_ids = tuple(row["article_ids"])
        imp = LabeledImpression(
            impression_id=row["request_id"], user_id=row["user_id"], ts=t,
            article_ids=article_ids, labels=tuple(1 if a in clicked else 0 for a in article_ids),
            surface=row["surface"] or "front_page")
        ctx = context_for(imp)
        pending.append(imp)
        for name, rec in systems.items():
            if name in deferred and imp.article_ids:
                held[name].append(rec.features(ctx, imp.article_ids))  # type: ignore[attr-defined]
            elif name in deferred:
                held[name].append(np.zeros((0, len(FEATURE_NAMES)), np.float32))
            else:
                held[name].append(rec.score(ctx, imp.article_ids))
        if len(pending) >= PREDICT_CHUNK:
            flush()
        if progress is not None and n % 1000 == 0:
            progress(n)
    flush()
    return evals
