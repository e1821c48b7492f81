"""Bootstrap of the online state from a dataset: imported readers are personalised at once.

    bootstrap_store(store, dataset_dir, *, since=None, event_log=None) -> BootstrapReport

A freshly started service has an empty online store, so without this every imported reader
is cold until they click again. The bootstrap loads, in bulk:

* user state: each user's history (the `histories` table, at its `as_of` time, in list order)
  and logged clicks, merged newest first and capped like live clicks;
* exposure lists, where the store keeps them (`max_user_exposures` > 0): each reader's
  shown articles, newest first, capped, as recording the impressions would leave them;
* article statistics: logged impressions (one per shown article) and clicks, plus the history
  clicks at `as_of` — exactly what recording each event would give, and what the offline replay
  (`features/replay.py`) assumes, so training and serving see the same features.

Idempotent by a marker kept in the store itself (`bootstrap:<dataset source>`, JSON): it says
up to which event time the dataset was loaded and whether the histories were. Loading the same
dataset again loads nothing; loading it after it grew (an export from the event log, a new
import) loads only events newer than the marker. Events that are in the event log were applied
live when they arrived; if they were exported into the dataset they are skipped by key
(interaction `event_id`, impression `request_id`), so nothing is counted twice.

Concurrency: a second marker (`bootstrap-lock:<source>`) is claimed atomically before loading,
so several processes or replicas sharing one store load it once; the others report `busy`. A
lock left by a crashed load is reported as `interrupted` (the state may hold part of the load):
clear the store and load again with `force=True`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.data.erasure import erased_users
from newsdesk.errors import DatasetError
from newsdesk.features.online_store import ArticleCounts, Click, OnlineStore
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.features.bootstrap")

Status = Literal["loaded", "up_to_date", "busy", "interrupted"]
_USER_CHUNK = 20_000  # users per merge call: bounded memory and store round trips
STALE_LOCK_S = 15 * 60.0  # a load holding its lock longer than this is taken for dead


@dataclass
class BootstrapReport:
    """What one bootstrap did. Times are Unix seconds; counts are rows loaded now."""

    status: Status
    dataset: str
    source: str
    users: int = 0
    history_clicks: int = 0
    clicks: int = 0
    impressions: int = 0
    shown: int = 0
    articles: int = 0
    skipped_in_event_log: int = 0
    loaded_until: float | None = None
    seconds: float = 0.0
    detail: str = ""
    phases_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.status != "loaded":
            return f"online store bootstrap from {self.dataset}: {self.status} {self.detail}"
        return (f"online store bootstrap from {self.dataset}: {self.users:,} users "
                f"({self.history_clicks:,} history clicks), {self.clicks:,} clicks, "
                f"{self.impressions:,} impressions ({self.shown:,} shown articles), "
                f"{self.articles:,} articles, {self.skipped_in_event_log:,} events skipped "
                f"(already in the event log), {self.seconds:.1f} s")


def marker_name(source: str) -> str:
    return f"bootstrap:{source}"


def read_marker(store: OnlineStore, source: str) -> dict[str, Any] | None:
    raw = store.read_marker(marker_name(source))
    return None if raw is None else dict(json.loads(raw))


def bootstrap_store(store: OnlineStore, dataset_dir: str | Path, *,
                    since: datetime | float | None = None, event_log: Any = None,
                    force: bool = False) -> BootstrapReport:
    """Load the dataset's user histories, clicks and article statistics into `store`.

    Args:
        since: load only events at or after this time (datetime or Unix seconds); histories
            are loaded when their `as_of` is at or after it (or unknown).
        event_log: the service's `EventLog`; events it holds are skipped (already applied).
        force: take over a lock left by a crashed load (clear the store first).
    """
    started = time.perf_counter()
    ds = Dataset(dataset_dir)
    source = ds.source
    report = BootstrapReport("loaded", str(dataset_dir), source)
    lock = f"bootstrap-lock:{source}"
    me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    if not store.claim_marker(lock, me):
        holder = json.loads(store.read_marker(lock) or "{}")
        age = time.time() - float(holder.get("since", 0.0))
        if age < STALE_LOCK_S and not force:
            report.status, report.detail = "busy", f"another load holds the lock ({holder})"
            return report
        if not force:
            report.status = "interrupted"
            report.detail = (f"a load started {age / 60:.0f} min ago never finished "
                             f"({holder}); the store may hold part of it: clear it and load "
                             "again with --force")
            return report
        store.write_marker(lock, me)
    try:
        _load(store, ds, report, since, event_log)
    finally:
        store.delete_marker(lock)
    report.seconds = time.perf_counter() - started
    log.info("store_bootstrap", **{k: v for k, v in report.to_dict().items()
                                   if k != "phases_s"})
    return report


def merge_logged_events(store: OnlineStore, events: Sequence[Any]) -> int:
    """Logged events (`Impression`, `Interaction`) merged into the store the way the dataset
    is: article counts in `merge_article_counts`, clicks into the users' lists by time
    (`merge_user_clicks`). The same state as `record_events` (the contract of the merges),
    in a few bulk calls instead of three commands per click -- the replay of a rebuild and the
    deferred events of an outage (serving/state_keeper.py) -- and a click older than those
    recorded live meanwhile lands below them, where `record_events` would put it on top.
    Returns the number of events."""
    from newsdesk.data.schema import Impression, InteractionType
    from newsdesk.features.dismissals import apply_dismissals

    apply_dismissals(store, events)  # markers, merged (features/dismissals.py)
    shown_ids: list[str] = []
    shown_ts: list[float] = []
    shown_users: list[str] = []
    users: list[str] = []
    clicked: list[str] = []
    click_ts: list[float] = []
    for event in events:
        ts = event.timestamp.timestamp()
        if isinstance(event, Impression):
            shown_ids += event.article_ids
            shown_ts += [ts] * len(event.article_ids)
            shown_users += [event.user_id] * len(event.article_ids)
        elif event.type is InteractionType.CLICK:
            users.append(event.user_id)
            clicked.append(event.article_id)
            click_ts.append(ts)
    if not shown_ids and not clicked:
        return len(events)
    clicks = pl.DataFrame({"user_id": users, "article_id": clicked, "ts": click_ts},
                          schema={"user_id": pl.String, "article_id": pl.String,
                                  "ts": pl.Float64})
    shown = pl.DataFrame({"article_id": shown_ids, "ts": shown_ts},
                         schema={"article_id": pl.String, "ts": pl.Float64})
    store.merge_article_counts(_article_counts(
        clicks=clicks.select("article_id", "ts"), shown=shown,
        half_life_hours=store.half_life_hours))
    for chunk in _chunks(_user_lists(_empty_history(), clicks, store.max_user_clicks)):
        store.merge_user_clicks(chunk)
    if store.max_user_exposures > 0:
        _merge_exposures(store, shown.with_columns(pl.Series("user_id", shown_users,
                                                             dtype=pl.String)))
    return len(events)


def _merge_exposures(store: OnlineStore, shown: pl.DataFrame,
                     gone: set[str] | frozenset[str] = frozenset()) -> int:
    """Shown articles (user_id, article_id, ts; a slate's rows in position order) into the
    readers' exposure lists: the later row of a slate first, as recording it would."""
    lists = _user_lists(_empty_history(), shown, store.max_user_exposures)
    if gone:
        lists = ((u, c) for u, c in lists if u not in gone)
    return sum(store.merge_user_exposures(chunk) for chunk in _chunks(lists))


def _unix(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    return value.timestamp()


def _load(store: OnlineStore, ds: Dataset, report: BootstrapReport,
          since: datetime | float | None, event_log: Any) -> None:
    phase = time.perf_counter()
    marker = read_marker(store, report.source) or {}
    lower = max(x for x in (_unix(since), marker.get("loaded_until"), -np.inf)
                if x is not None)
    strict = marker.get("loaded_until") is not None and lower == marker["loaded_until"]
    want_histories = not marker.get("histories", False)
    hl = store.half_life_hours

    def after(col: str) -> pl.Expr:
        t = pl.col(col).dt.epoch("us") / 1e6
        if lower == -np.inf:
            return pl.lit(True)
        return t > lower if strict else t >= lower

    clicks = (ds.scan("interactions").filter((pl.col("type") == "click") & after("timestamp"))
              .select("event_id", "user_id", "article_id",
                      (pl.col("timestamp").dt.epoch("us") / 1e6).alias("ts")).collect())
    impressions = (ds.scan("impressions").filter(after("timestamp"))
                   .select("request_id", "user_id", "article_ids",
                           (pl.col("timestamp").dt.epoch("us") / 1e6).alias("ts")).collect())
    # the log's keys only matter when there is something to load (a restart usually has not)
    logged_events, logged_requests = (_event_log_keys(event_log)
                                      if clicks.height or impressions.height else (set(), set()))
    if logged_events:
        n = clicks.height
        clicks = clicks.filter(~pl.col("event_id").is_in(list(logged_events)))
        report.skipped_in_event_log += n - clicks.height
    if logged_requests:
        n = impressions.height
        impressions = impressions.filter(~pl.col("request_id").is_in(list(logged_requests)))
        report.skipped_in_event_log += n - impressions.height
    history = _histories(ds, since) if want_histories else _empty_history()
    report.phases_s["read_s"] = time.perf_counter() - phase

    phase = time.perf_counter()
    shown = impressions.select(pl.col("article_ids").alias("article_id"), "ts").explode(
        "article_id")
    counts = _article_counts(
        clicks=pl.concat([clicks.select("article_id", "ts"),
                          history.select("article_id", "ts")]),
        shown=shown, half_life_hours=hl)
    store.merge_article_counts(counts)
    report.phases_s["articles_s"] = time.perf_counter() - phase

    phase = time.perf_counter()
    users = _user_lists(history, clicks, store.max_user_clicks)
    gone = erased_users(ds.root)  # erased readers (data/erasure.py) get no history back
    if gone:
        users = ((u, c) for u, c in users if u not in gone)
    n_users = 0
    for chunk in _chunks(users):
        n_users += store.merge_user_clicks(chunk)
    if store.max_user_exposures > 0:
        _merge_exposures(store, impressions.select(
            "user_id", pl.col("article_ids").alias("article_id"), "ts").explode("article_id"),
            gone)
    report.phases_s["users_s"] = time.perf_counter() - phase

    newest = [float(x) for x in (clicks["ts"].max(), impressions["ts"].max())
              if x is not None]
    previous = marker.get("loaded_until")
    loaded_until = max([*newest, *([previous] if previous is not None else [])], default=None)
    report.users, report.history_clicks = n_users, history.height
    report.clicks, report.impressions, report.shown = clicks.height, impressions.height, \
        shown.height
    report.articles, report.loaded_until = len(counts), loaded_until
    if report.users == report.clicks == report.impressions == 0:
        report.status = "up_to_date"
        report.detail = "(nothing newer than the last load)"
    store.write_marker(marker_name(report.source), json.dumps({
        "loaded_until": loaded_until,
        "histories": bool(marker.get("histories", False) or want_histories),
        "dataset": report.dataset, "at": time.time(),
    }))


def _event_log_keys(event_log: Any) -> tuple[set[str], set[str]]:
    """Keys of every event in the log: interaction event ids, impression request ids."""
    events: set[str] = set()
    requests: set[str] = set()
    if event_log is None:
        return events, requests
    # the keys alone (EventLog.event_keys): a rebuild after Redis came back empty runs this over
    # the whole log, and decoding every event for its key was most of the rebuild's time
    for kind, key in event_log.event_keys():
        (requests if kind == "impression" else events).add(key)
    return events, requests


def _empty_history() -> pl.DataFrame:
    return pl.DataFrame(schema={"user_id": pl.String, "article_id": pl.String,
                                "ts": pl.Float64, "pos": pl.Int64})


def _histories(ds: Dataset, since: datetime | float | None) -> pl.DataFrame:
    """One row per history click: ts = as_of (0 when unknown), pos = place in the list."""
    lower = _unix(since)
    frame = ds.scan("histories").select(
        "user_id", "article_ids",
        (pl.col("as_of").dt.epoch("us") / 1e6).fill_null(0.0).alias("ts"))
    if lower is not None:
        frame = frame.filter((pl.col("ts") >= lower) | (pl.col("ts") == 0.0))
    out = (frame.with_columns(pl.int_ranges(0, pl.col("article_ids").list.len()).alias("pos"))
           .explode("article_ids", "pos")
           .drop_nulls("article_ids")
           .select("user_id", pl.col("article_ids").alias("article_id"), "ts",
                   pl.col("pos").cast(pl.Int64))
           .collect())
    return out


def _decayed(frame: pl.DataFrame, half_life_hours: float, prefix: str) -> pl.DataFrame:
    """Per article: count, decayed count at its newest event (value, ref), newest time."""
    hl_s = half_life_hours * 3600.0
    return (frame.group_by("article_id")
            .agg(pl.len().alias(f"{prefix}_n"),
                 pl.col("ts").max().alias(f"{prefix}_ref"),
                 (2.0 ** ((pl.col("ts") - pl.col("ts").max()) / hl_s)).sum()
                 .alias(f"{prefix}_value")))


def _article_counts(*, clicks: pl.DataFrame, shown: pl.DataFrame,
                    half_life_hours: float) -> ArticleCounts:
    c = _decayed(clicks, half_life_hours, "c")
    s = _decayed(shown, half_life_hours, "s")
    both = c.join(s, on="article_id", how="full", coalesce=True).sort("article_id")
    filled = both.with_columns(pl.col("c_n", "s_n").fill_null(0),
                               pl.col("c_value", "s_value", "c_ref", "s_ref").fill_null(0.0))
    last = np.fmax(both["c_ref"].to_numpy(allow_copy=True).astype(np.float64),
                   both["s_ref"].to_numpy(allow_copy=True).astype(np.float64))
    return ArticleCounts(
        ids=filled["article_id"].to_list(),
        impressions=filled["s_n"].to_numpy().astype(np.int64),
        clicks=filled["c_n"].to_numpy().astype(np.int64),
        imp_value=filled["s_value"].to_numpy().astype(np.float64),
        imp_ref=filled["s_ref"].to_numpy().astype(np.float64),
        clk_value=filled["c_value"].to_numpy().astype(np.float64),
        clk_ref=filled["c_ref"].to_numpy().astype(np.float64),
        last_ts=last,
    )


def _user_lists(history: pl.DataFrame, clicks: pl.DataFrame, cap: int
                ) -> Iterator[tuple[str, list[Click]]]:
    """Each user's clicks newest first, capped: logged clicks by time, then the history
    (all at as_of, later list entries are newer). Clicks at the same time: the later row
    first, as recording them one by one would put them."""
    top = np.iinfo(np.int64).max - clicks.height  # above every history position
    rows = pl.concat([
        history.select("user_id", "article_id", "ts", "pos"),
        clicks.select("user_id", "article_id", "ts",
                      (pl.int_range(pl.len(), dtype=pl.Int64) + top).alias("pos")),
    ])
    if rows.is_empty():
        return
    grouped = (rows.sort(["user_id", "ts", "pos"], descending=[False, True, True])
               .group_by("user_id", maintain_order=True)
               .agg(pl.col("article_id").head(cap), pl.col("ts").head(cap)))
    intern: dict[str, str] = {}  # one str object per article id, however many users
    for user_id, articles, times in grouped.iter_rows():
        yield user_id, [Click(intern.setdefault(a, a), t)
                        for a, t in zip(articles, times, strict=True)]


def _chunks(users: Iterator[tuple[str, list[Click]]]
            ) -> Iterator[Sequence[tuple[str, list[Click]]]]:
    chunk: list[tuple[str, list[Click]]] = []
    for item in users:
        chunk.append(item)
        if len(chunk) >= _USER_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_dataset(dataset_dir: str | Path) -> None:
    """Raise DatasetError naming the directory when it is not a dataset."""
    if not Path(dataset_dir).is_dir():
        raise DatasetError(f"dataset directory {dataset_dir} does not exist")
    Dataset(dataset_dir)
