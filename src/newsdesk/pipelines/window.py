"""The latest window of a dataset, and the dataset as it was before it (the gate's holdout).

The gate scores the candidate and the active bundle on the newest `window_hours` of
impressions. For that comparison to be out-of-sample for the candidate too, the candidate is
trained on a copy of the dataset cut at the window's start (`dataset_before`): impressions,
interactions and articles published before the cut, all histories. The copy is written once
per cycle into the pipeline's work directory and deleted after training.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.errors import DatasetError

_TIME_COLUMN = {"impressions": "timestamp", "interactions": "timestamp",
                "articles": "published_at"}


def latest_window(dataset_dir: str | Path, hours: float) -> tuple[float, float]:
    """[start, end) in Unix seconds: the last `hours` up to just after the newest impression."""
    ds = Dataset(dataset_dir)
    newest = ds.scan("impressions").select(pl.col("timestamp").max()).collect().item()
    if newest is None:
        raise DatasetError(f"{dataset_dir}: no impressions, nothing to evaluate on")
    end = newest.timestamp() + 1e-6
    return end - hours * 3600.0, end


def dataset_before(src: str | Path, dst: str | Path, until: float) -> Path:
    """Write the dataset `src` as of `until` (Unix s, exclusive) to `dst`; returns dst."""
    ds = Dataset(src)
    cut = datetime.fromtimestamp(until, UTC)
    with DatasetWriter(dst, source=ds.source) as writer:
        for name in ("articles", "impressions", "interactions", "histories"):
            out = writer.table(name, dedupe=False)
            column = _TIME_COLUMN.get(name)
            for path in ds.files(name):
                table = pq.read_table(path)
                if column is not None:
                    frame = pl.from_arrow(table)
                    assert isinstance(frame, pl.DataFrame)
                    table = frame.filter(pl.col(column) < cut).to_arrow()
                if table.num_rows:
                    out.write_table(table)
        writer.report["cut_at"] = cut.isoformat()
        writer.report["cut_from"] = str(Path(src).resolve())
    return Path(dst)


def events_since(dataset_dir: str | Path, since: float) -> list[dict]:
    """The dataset's impressions and interactions at or after `since` (Unix s) as event-log
    records (`kind` set), in time order, impressions before the clicks of the same instant:
    what a serving event log would have recorded since then (demo and benchmark)."""
    ds = Dataset(dataset_dir)
    cut = pl.lit(int(since * 1e6)).cast(pl.Datetime("us", "UTC"))
    keyed: list[tuple[datetime, int, dict]] = []
    for kind, table in (("impression", "impressions"), ("interaction", "interactions")):
        frame = ds.scan(table).filter(pl.col("timestamp") >= cut).collect()
        order = 0 if kind == "impression" else 1
        for row in frame.iter_rows(named=True):
            rec = {k: v for k, v in row.items() if v is not None}
            rec["kind"] = kind
            keyed.append((row["timestamp"], order, rec))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [rec for _, _, rec in keyed]


def log_events_since(dataset_dir: str | Path, since: float, event_log: object,
                     batch: int = 5000) -> int:
    """Append `events_since(dataset_dir, since)` to an open EventLog; returns the count."""
    rows = events_since(dataset_dir, since)
    for lo in range(0, len(rows), batch):
        event_log.append(rows[lo:lo + batch])  # type: ignore[attr-defined]
    return len(rows)
