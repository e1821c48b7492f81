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
