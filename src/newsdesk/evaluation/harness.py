"""The evaluation harness: one bundle against baselines under a chosen protocol.

Protocols (all compare the bundle with baselines and give paired bootstrap intervals):

    replay  events replayed in time order through a fresh online store; impressions of the
            scoring window (default: the last day) are ranked using only the past
    mind    every impression in the window is ranked with the users' pre-period histories only
            (no online updates), MIND-paper style; `--predictions` writes the leaderboard file
    topk    time-based split at the window start: state is replayed up to it, then each user
            with clicks in the window gets a full-catalog top-K list (recall, nDCG, hit rate,
            coverage, diversity, novelty, freshness, popularity bias)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from newsdesk.evaluation.report import EvaluationReport

PROTOCOLS = ("replay", "mind", "topk")


def _window(ds: Any, window: str) -> tuple[float | None, float | None]:
    from newsdesk.errors import InvalidInput
    from newsdesk.evaluation.replay import day_bounds

    if window == "all":
        return None, None
    if window == "last-day":
        days = day_bounds(ds)
        if not days:
            raise InvalidInput("the dataset has no impressions to evaluate", field="dataset")
        return days[-1]
    raise InvalidInput(f"--window must be 'last-day' or 'all', got {window!r}", field="window")


def _load(bundle: Path) -> tuple[Any, Any]:
    """The bundle's recommender and a fresh store with the bundle's half-life."""
    from newsdesk.models.bundle import load_recommender, offline_store

    store = offline_store(bundle)
    return load_recommender(bundle, store), store


def _clicks_before(ds: Any, until: float | None) -> list[str]:
    import polars as pl

    q = ds.scan("interactions").filter(pl.col("type") == "click")
    if until is not None:
        q = q.filter(pl.col("timestamp").dt.epoch("us") < int(until * 1e6))
    return q.select("article_id").collect()["article_id"].to_list()


def run_evaluation(dataset_dir: Path, bundle: Path | None, protocol: str, *, window: str,
                   k: int, seed: int, n_resamples: int, predictions: Path | None
                   ) -> EvaluationReport:
    """Evaluate the bundle (if any) and the baselines; the report has `systems`,
    `comparisons` (paired bootstrap) and `meta`."""
    from newsdesk.data.dataset import Dataset
    from newsdesk.errors import InvalidInput
    from newsdesk.evaluation.bootstrap import compare_systems
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.models.baselines import MostPopular, RandomRecommender, StreamingCTRRecommender

    if protocol not in PROTOCOLS:
        raise InvalidInput(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}",
                           field="protocol")
    ds = Dataset(dataset_dir)
    start, end = _window(ds, window)
    base_store = MemoryOnlineStore(half_life_hours=24.0)
    if protocol == "mind":  # id-keyed co-clicks from the history column (LogSignalStore)
        from newsdesk.models.log_signals import LogSignalStore
        base_store = LogSignalStore(half_life_hours=24.0)
    stores = [base_store]
    systems: dict[str, Any] = {"random": RandomRecommender(seed=seed),
                               "streaming_ctr": StreamingCTRRecommender(base_store),
                               "most_popular": MostPopular().fit(_clicks_before(ds, start))}
    if protocol == "mind":
        from newsdesk.models.log_signals import HistoryCoClickRecommender
        systems["history_coclick"] = HistoryCoClickRecommender(base_store)
    if bundle is not None:
        rec, store = _load(bundle)
        systems["newsdesk"] = rec
        stores.append(store)
    meta: dict[str, Any] = {"dataset": str(dataset_dir), "protocol": protocol,
                            "bundle": str(bundle) if bundle else None, "window": window}
    if protocol in ("replay", "mind"):
        per_unit, summaries = _impression_protocol(ds, systems, stores, protocol, start, end,
                                                   predictions)
        metrics = ["auc", "mrr", "ndcg@5", "ndcg@10"]
    else:
        per_unit, summaries = _topk_protocol(ds, systems, stores, start, end, k)
        metrics = [f"recall@{k}", f"ndcg@{k}", f"hit@{k}"]
    if "newsdesk" in per_unit:  # the bundle against every baseline
        pairs = [(base, "newsdesk") for base in per_unit if base != "newsdesk"]
    else:  # no bundle: every baseline against random
        pairs = [("random", s) for s in per_unit if s != "random"]
    comparisons = []
    for base, other in pairs:
        comparisons += compare_systems({base: per_unit[base], other: per_unit[other]}, base,
                                       metrics, n_resamples=n_resamples, seed=seed)
    return EvaluationReport(f"newsdesk evaluate ({protocol})", summaries, comparisons, meta)


def _impression_protocol(ds: Any, systems: dict[str, Any], stores: list[Any], protocol: str,
                         start: float | None, end: float | None, predictions: Path | None
                         ) -> tuple[dict, dict]:
    from newsdesk.evaluation.mind_protocol import write_prediction_file
    from newsdesk.evaluation.replay import (
        ArticleEvent,
        ImpressionEvent,
        build_events,
        history_events,
        replay_events,
    )

    if protocol == "mind":
        # MIND-style: what was logged before the window -- the history column, the earlier
        # impressions and clicks -- is known (the systems' own stores get it, in time order);
        # the window's impressions and clicks are written only to throwaway stores, so every
        # scored impression sees the same state. Before, the histories and earlier logs also
        # went to throwaway stores, so store-based systems tied every candidate (AUC 0.4993 on
        # the MIND sample).
        from newsdesk.evaluation.replay import ClickEvent
        from newsdesk.features.memory_store import MemoryOnlineStore

        events = build_events(ds, score_from=start, score_until=end, seed_histories=False)
        imps = [e for e in events if isinstance(e, ImpressionEvent) and e.scored]
        first_scored = min((e.ts for e in imps), default=float("inf"))
        past = [e for e in events if isinstance(e, ArticleEvent)
                or (isinstance(e, ImpressionEvent) and not e.scored)
                or (isinstance(e, ClickEvent) and e.ts < first_scored)]
        first = min((e.ts for e in [*past, *imps]), default=0.0)
        replay_events([*history_events(ds, first), *past], systems, stores)  # scores nothing
        events = list(imps)
        stores = [MemoryOnlineStore(half_life_hours=s.half_life_hours) for s in stores]
    else:
        events = build_events(ds, score_from=start, score_until=end)
    evals = replay_events(events, systems, stores)
    if predictions is not None and "newsdesk" in evals:
        ev = evals["newsdesk"]
        write_prediction_file(predictions, ev.impression_ids, ev.ranks)
    return ({n: e.per_unit() for n, e in evals.items()},
            {n: e.summary() for n, e in evals.items()})


def _topk_protocol(ds: Any, systems: dict[str, Any], stores: list[Any], start: float | None,
                   end: float | None, k: int) -> tuple[dict, dict]:
    import polars as pl

    from newsdesk.errors import InvalidInput
    from newsdesk.evaluation.replay import ImpressionEvent, build_events, replay_events
    from newsdesk.evaluation.topk import beyond_accuracy, evaluate_topk, recommend_all

    if start is None:
        raise InvalidInput("the topk protocol needs a split time: use --window last-day",
                           field="window")
    events = [ImpressionEvent(e.ts, e.impression, False) if isinstance(e, ImpressionEvent)
              else e for e in build_events(ds, score_until=start)]
    replay_events(events, systems, stores)  # state up to the split, nothing scored
    clicks = ds.read("interactions").filter(pl.col("type") == "click").with_columns(
        pl.col("timestamp").dt.epoch("us").alias("us"))
    train = clicks.filter(pl.col("us") < int(start * 1e6))
    test = clicks.filter((pl.col("us") >= int(start * 1e6))
                         & (pl.col("us") < int((end or float("inf")) * 1e6)))
    relevant = {u: set(a) for u, a in test.group_by("user_id").agg("article_id").iter_rows()}
    seen = {u: set(a) for u, a in train.group_by("user_id").agg("article_id").iter_rows()}
    users = sorted(relevant)
    arts = ds.read("articles")
    published = {a: t.timestamp() for a, t in arts.select("article_id", "published_at").iter_rows()}
    categories = dict(arts.select("article_id", "category").iter_rows())
    counts = train.group_by("article_id").len()
    popularity = {a: n / max(1, train.height) for a, n in counts.iter_rows()}
    per_unit, summaries = {}, {}
    for name, rec in systems.items():
        recs = recommend_all(rec, users, now=start, k=k, exclude=seen)
        ev = evaluate_topk(name, recs, relevant, k, users=users)
        per_unit[name] = ev.per_unit()
        summaries[name] = ev.summary() | beyond_accuracy(
            recs, catalog_size=max(1, len(published)), popularity=popularity, k=k,
            categories=categories, published_at=published, now=start)
    return per_unit, summaries
