"""A dataset directory as the arrays the training job replays (and a store warmer for tests).

`load_log` reads the articles, impressions, click interactions and histories of a dataset into
integer-coded arrays: articles are indexed in dataset order (the catalog's order), users by a
sorted code. Clicks are attributed to impressions by `request_id`; when a dataset has no
request ids on its clicks, a click of the same user on the same article within
`attribution_window_s` after the impression counts instead.

`warm_store` writes the same events (histories first, then impressions and clicks in time order,
those strictly before `until`) into an `OnlineStore`: the online half of the parity test and
the way a replay evaluation starts a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.data.erasure import erased_users
from newsdesk.data.schema import Article
from newsdesk.features.online_store import OnlineStore
from newsdesk.features.replay import EventArrays, QueryRows

UNKNOWN = "\x00unknown"  # stands for a clicked article missing from the dataset


@dataclass
class LogArrays:
    articles: list[Article]
    events: EventArrays
    exposures: pl.DataFrame  # q, ts, ucode, aidx, akey, pos, label (one row per shown article)
    query_ts: np.ndarray  # (n_impressions,) Unix s
    time_range: tuple[float, float]
    counts: dict[str, int] = field(default_factory=dict)
    # statistics key -> article id: the catalog's articles (key = aidx) then every logged id
    # missing from it, whose real-time counts the store keeps all the same
    key_ids: list[str] = field(default_factory=list)


@dataclass
class QuerySet:
    rows: QueryRows
    labels: np.ndarray  # (R,) 0/1
    groups: np.ndarray  # (Q,) rows per query, rows sorted by query
    n_queries: int


def _epoch(col: str) -> pl.Expr:
    return pl.col(col).dt.epoch("us").cast(pl.Float64) / 1e6


def _label_hits(q: np.ndarray, akey: np.ndarray, hit_q: np.ndarray, hit_key: np.ndarray,
                n_keys: int, chunk: int = 1 << 22) -> np.ndarray:
    """(R,) int8: 1 where the row's (q, akey) is among the hit pairs; chunked to bound memory."""
    hits = np.unique(hit_q.astype(np.int64) * (n_keys + 1) + hit_key.astype(np.int64))
    out = np.zeros(len(q), np.int8)
    if len(hits) == 0:
        return out
    for lo in range(0, len(q), chunk):
        k = q[lo:lo + chunk].astype(np.int64) * (n_keys + 1) + akey[lo:lo + chunk]
        pos = np.minimum(np.searchsorted(hits, k), len(hits) - 1)
        out[lo:lo + chunk] = (hits[pos] == k) & (akey[lo:lo + chunk] >= 0)
    return out


def load_log(dataset_dir: Path, attribution_window_s: float = 3600.0,
             erased: frozenset[str] = frozenset()) -> LogArrays:
    """Read a dataset directory into LogArrays (see the module docstring).

    Memory: ids are coded to integers before the slates are exploded (the exploded exposures
    are narrow numeric columns, ~29 bytes per shown item), and the impressions' article id
    lists are cast to integer codes while they are scanned, so the log's strings are never
    held one row per shown item.

    Readers in `erased` or in the dataset's erasure list (data/erasure.py) are left out of
    impressions, clicks and histories: the right to erasure reaches every training set."""
    ds = Dataset(dataset_dir)
    gone = sorted(erased | erased_users(dataset_dir))

    def kept(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.filter(~pl.col("user_id").is_in(gone)) if gone else lf

    arts = ds.read("articles")
    articles = [Article.model_construct(**row) for row in arts.iter_rows(named=True)]
    n_arts = len(arts)
    imp_lf = kept(ds.scan("impressions"))
    clk = (kept(ds.scan("interactions")).filter(pl.col("type") == "click")
           .select("user_id", "article_id", _epoch("timestamp").alias("ts"), "request_id")
           .collect().sort("ts", maintain_order=True))
    hist = kept(ds.scan("histories")).collect()
    imp_ids = (imp_lf.select(pl.col("article_ids").explode().drop_nulls().cast(pl.Utf8)
                             .unique()).collect(engine="streaming").to_series())
    seen = [clk["article_id"], hist["article_ids"].explode().drop_nulls(), imp_ids]
    extra_ids = sorted(set(pl.concat([x.cast(pl.Utf8) for x in seen]).unique().to_list())
                       - set(arts["article_id"].to_list()))
    key_ids = arts["article_id"].to_list() + extra_ids
    n_keys = len(key_ids)
    key_index = pl.DataFrame({"article_id": pl.Series(key_ids, dtype=pl.Utf8),
                              "akey": np.arange(n_keys, dtype=np.int64)})
    # article ids -> statistics keys while scanning: an Enum's physical code is the key
    enum = pl.Enum(key_ids)
    imp = (imp_lf.select(
        "request_id", "user_id", _epoch("timestamp").alias("ts"),
        pl.col("article_ids").cast(pl.List(pl.Utf8)).cast(pl.List(enum))
        .list.eval(pl.element().to_physical().cast(pl.Int32)).alias("akey"))
        .collect(engine="streaming").sort("ts", maintain_order=True).with_row_index("q"))
    users = pl.concat([imp["user_id"], clk["user_id"], hist["user_id"]]).unique().sort()
    user_index = pl.DataFrame({"user_id": users, "ucode": np.arange(len(users), dtype=np.int64)})
    imp = imp.join(user_index, on="user_id", how="left", maintain_order="left").drop("user_id")

    def code(df: pl.DataFrame) -> pl.DataFrame:
        df = df.join(user_index, on="user_id", how="left", maintain_order="left")
        df = df.join(key_index, on="article_id", how="left", maintain_order="left")
        return df.with_columns(
            pl.when(pl.col("akey") < n_arts).then(pl.col("akey")).otherwise(-1).alias("aidx"),
            pl.col("akey").fill_null(-1))

    clk = code(clk)
    exp = imp.select(
        "q", "ts", pl.col("ucode").cast(pl.Int32), "akey",
        pl.int_ranges(0, pl.col("akey").list.len(), dtype=pl.Int32).alias("pos"),
    ).explode(["akey", "pos"])
    exp = exp.with_columns(pl.col("akey").fill_null(-1)).with_columns(
        pl.when(pl.col("akey") < n_arts).then(pl.col("akey")).otherwise(-1).alias("aidx"))
    exp = exp.select("q", "ts", "ucode", "aidx", "akey", "pos").rechunk()
    imp = imp.drop("akey")  # the slates' lists: exploded into `exp` now
    q_np, key_np = exp["q"].to_numpy(), exp["akey"].to_numpy()
    if clk["request_id"].null_count() < len(clk):
        clicked = (clk.filter(pl.col("request_id").is_not_null() & (pl.col("akey") >= 0))
                   .select("request_id", "akey").unique()
                   .join(imp.select("request_id", "q"), on="request_id"))
    else:
        cand = (exp.select("q", "ucode", "ts", "akey").filter(pl.col("akey") >= 0)
                .with_columns(pl.col("ucode").cast(pl.Int64), pl.col("akey").cast(pl.Int64))
                .join(clk.filter(pl.col("akey") >= 0)
                      .select("ucode", "akey", pl.col("ts").alias("cts")),
                      on=["ucode", "akey"]))
        clicked = cand.filter((pl.col("cts") >= pl.col("ts"))
                              & (pl.col("cts") < pl.col("ts") + attribution_window_s))
    label = _label_hits(q_np, key_np, clicked["q"].to_numpy(), clicked["akey"].to_numpy(),
                        n_keys)
    del clicked
    exp = exp.with_columns(pl.Series("label", label, dtype=pl.Int8))
    del label, q_np, key_np

    imp_ts = imp["ts"].to_numpy()
    all_ts = np.concatenate([imp_ts, clk["ts"].to_numpy()])
    t_first = float(all_ts.min()) if len(all_ts) else 0.0
    h = code(hist.select("user_id", "article_ids", "as_of").explode("article_ids")
             .rename({"article_ids": "article_id"}).drop_nulls("article_id"))
    h_ts = (h.select(_epoch("as_of").fill_null(t_first - 1.0))["as_of"].to_numpy()
            if len(h) else np.zeros(0))
    counts = {"articles": n_arts, "impressions": len(imp), "exposures": len(exp),
              "clicks": len(clk), "history_clicks": len(h), "users": len(users)}
    del imp
    # the exposure arrays are read-only views of the exposures frame's columns (no copies)
    events = EventArrays(
        user_ids=users.to_list(),
        click_user=clk["ucode"].to_numpy().astype(np.int64),
        click_article=clk["aidx"].to_numpy().astype(np.int64),
        click_ts=clk["ts"].to_numpy().astype(np.float64),
        exp_article=exp["aidx"].to_numpy(),
        exp_ts=exp["ts"].to_numpy(),
        hist_user=h["ucode"].to_numpy().astype(np.int64) if len(h) else np.zeros(0, np.int64),
        hist_article=h["aidx"].to_numpy().astype(np.int64) if len(h) else np.zeros(0, np.int64),
        hist_ts=h_ts.astype(np.float64),
        click_key=clk["akey"].to_numpy().astype(np.int64),
        exp_key=exp["akey"].to_numpy(),
        hist_key=h["akey"].to_numpy().astype(np.int64) if len(h) else np.zeros(0, np.int64),
        n_keys=n_keys,
        exp_user=exp["ucode"].to_numpy(),
    )
    t_range = (float(imp_ts.min()), float(imp_ts.max())) if len(imp_ts) else (t_first, t_first)
    return LogArrays(articles, events, exp, imp_ts, t_range, counts, key_ids)


def ranker_queries(log: LogArrays, lo: float, hi: float, max_queries: int,
                   rng: np.random.Generator) -> QuerySet:
    """Impressions with lo <= ts < hi having both a click and a non-click, at most
    max_queries of them (uniform sample), as query-sorted rows."""
    # lazy + streaming: the per-shown-item log is aggregated in morsels, never copied whole
    per_q = (log.exposures.lazy().filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
             .group_by("q").agg(pl.col("label").sum().alias("c"), pl.len().alias("n"))
             .filter((pl.col("c") > 0) & (pl.col("c") < pl.col("n"))).sort("q")
             .collect(engine="streaming"))
    qs = per_q["q"].to_numpy()
    if len(qs) > max_queries:
        qs = np.sort(rng.choice(qs, size=max_queries, replace=False))
    rows = (log.exposures.lazy()
            .join(pl.LazyFrame({"q": pl.Series(qs, dtype=log.exposures["q"].dtype)}),
                  on="q", how="semi")
            .collect(engine="streaming").sort(["q", "pos"]))
    q_of_row = rows["q"].to_numpy()
    new_q = np.searchsorted(qs, q_of_row)
    first = rows.group_by("q", maintain_order=True).agg(pl.col("ucode").first(),
                                                         pl.col("ts").first(), pl.len())
    return QuerySet(
        rows=QueryRows(query_user=first["ucode"].to_numpy().astype(np.int64),
                       query_ts=first["ts"].to_numpy().astype(np.float64),
                       row_query=new_q.astype(np.int64),
                       row_article=rows["aidx"].to_numpy().astype(np.int64),
                       row_position=rows["pos"].to_numpy().astype(np.float64),
                       row_key=rows["akey"].to_numpy().astype(np.int64)),
        labels=rows["label"].to_numpy().astype(np.float64),
        groups=first["len"].to_numpy().astype(np.int64),
        n_queries=len(qs),
    )


def warm_store(store: OnlineStore, log: LogArrays, until: float,
               since: float | None = None) -> None:
    """Write every impression / click with since <= ts < until into `store`, plus the
    histories when `since` is None (a fresh store); call again with since=previous until to
    advance a store incrementally. One vectorised batch (`features.bulk_apply`), the state
    `warm_store_sequential` leaves."""
    from newsdesk.features.bulk_apply import EventBatch, apply_batch

    ev = log.events
    key_ids = log.key_ids or [a.article_id for a in log.articles]
    hist_art = ev.hist_article if ev.hist_key is None else ev.hist_key
    click_art = ev.click_article if ev.click_key is None else ev.click_key
    lo = -np.inf if since is None else since
    exp = log.exposures.filter((pl.col("ts") >= lo) & (pl.col("ts") < until))
    keep = (ev.click_ts >= lo) & (ev.click_ts < until)
    # the written order: histories (per user, oldest first), then clicks in time order
    c_order = np.argsort(ev.click_ts[keep], kind="stable")
    c_user = ev.click_user[keep][c_order]
    c_key = click_art[keep][c_order]
    c_ts = ev.click_ts[keep][c_order]
    if since is None and len(ev.hist_user):
        c_user = np.concatenate([ev.hist_user, c_user])
        c_key = np.concatenate([hist_art, c_key])
        c_ts = np.concatenate([ev.hist_ts, c_ts])
    apply_batch(store, EventBatch(
        ids=key_ids, users=ev.user_ids, imp_key=exp["akey"].to_numpy().astype(np.int64),
        imp_ts=exp["ts"].to_numpy().astype(np.float64),
        click_user=np.asarray(c_user, np.int64), click_key=np.asarray(c_key, np.int64),
        click_ts=np.asarray(c_ts, np.float64), unknown_id=UNKNOWN,
        imp_user=exp["ucode"].to_numpy().astype(np.int64)))


def warm_store_sequential(store: OnlineStore, log: LogArrays, until: float,
               since: float | None = None) -> None:
    """Write every impression / click with since <= ts < until into `store`, plus the
    histories when `since` is None (a fresh store); call again with since=previous until to
    advance a store incrementally. Event by event through the store's write API: the
    reference `warm_store` is tested against."""
    ev = log.events
    # statistics keys name every logged article, in or out of the catalog, as the store does
    key_ids = log.key_ids or [a.article_id for a in log.articles]
    hist_art = ev.hist_article if ev.hist_key is None else ev.hist_key
    click_art = ev.click_article if ev.click_key is None else ev.click_key
    lo = -np.inf if since is None else since
    by_user: dict[int, list[tuple[str, float]]] = {}
    for u, a, t in zip(ev.hist_user, hist_art, ev.hist_ts, strict=True):
        by_user.setdefault(int(u), []).append((key_ids[a] if a >= 0 else UNKNOWN, float(t)))
    # oldest first: the store prepends, so the newest history click ends up first
    for u, items in (by_user.items() if since is None else ()):
        for a, t in items:
            store.record_clicks(ev.user_ids[u], [a], t)
    exp = log.exposures.filter((pl.col("ts") >= lo) & (pl.col("ts") < until))
    events: list[tuple[float, int, object]] = []
    # one slate per impression: its rows are contiguous (the log is exploded per impression);
    # numpy boundaries instead of a polars group_by loop, which cost half of the replay
    q, q_ts = exp["q"].to_numpy(), exp["ts"].to_numpy()
    akeys = exp["akey"].to_list()
    readers = exp["ucode"].to_list()
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]]) if len(q) else np.zeros(0, np.int64)
    for s, e in zip(starts.tolist(), [*starts[1:].tolist(), len(q)], strict=True):
        events.append((float(q_ts[s]), 0, (ev.user_ids[readers[s]],
                                           [key_ids[a] for a in akeys[s:e] if a >= 0])))
    for u, a, t in zip(ev.click_user, click_art, ev.click_ts, strict=True):
        if lo <= t < until:  # unknown articles stay in the user's list, as they do online
            events.append((float(t), 1, (ev.user_ids[u], key_ids[a] if a >= 0 else UNKNOWN)))
    events.sort(key=lambda e: (e[0], e[1]))
    for t, kind, payload in events:
        if kind == 0:
            reader, shown = payload  # type: ignore[misc]
            store.record_impressions(shown, t)
            store.record_exposures(reader, shown, t)
        else:
            user, art = payload  # type: ignore[misc]
            store.record_clicks(user, [art], t)
