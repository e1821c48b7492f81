"""Retention and erasure applied to stored data: `newsdesk retention apply`.

Events older than the retention age (`NEWSDESK_RETENTION_DAYS` or `--max-age-days`, by event
time) and every event of an erased reader (data/erasure.py) are deleted from

* the event log (`EventLog.purge`: SQLite with secure_delete, or the Redis Stream), and
* dataset directories: impressions and interactions by `timestamp`, histories by `as_of`
  (a history without `as_of` has no age and is kept), every table by `user_id` for erased
  readers. The dataset is rewritten through `DatasetWriter` (staged, then swapped in), so a
  crash mid-way leaves the old dataset whole, never half of one. Articles are not personal
  data and stay.

Run it on a schedule (cron, a Kubernetes CronJob) next to the service: the SQLite log takes the
purge as one transaction beside the running writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsdesk.data.dataset import MANIFEST, Dataset, DatasetWriter
from newsdesk.data.erasure import ErasureList
from newsdesk.data.schema import TABLES
from newsdesk.errors import DatasetError

TIME_COLUMN = {"impressions": "timestamp", "interactions": "timestamp", "histories": "as_of"}


@dataclass
class RetentionReport:
    cutoff: str | None  # ISO time: events before it were purged (None: no age limit)
    erased_users: int
    event_log_deleted: int | None = None
    dataset_deleted: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff, "erased_users": self.erased_users,
                "event_log_deleted": self.event_log_deleted,
                "dataset_deleted": self.dataset_deleted}


def _keep_mask(table: pa.Table, name: str, before: float | None,
               users: frozenset[str]) -> pa.Array | None:
    masks = []
    col = TIME_COLUMN.get(name)
    if before is not None and col is not None:
        cutoff = pa.scalar(datetime.fromtimestamp(before, UTC), type=table.schema.field(col).type)
        # null as_of (unknown age) is kept
        masks.append(pc.fill_null(pc.greater_equal(table.column(col), cutoff), True))
    if users and "user_id" in table.column_names:
        masks.append(pc.invert(pc.is_in(table.column("user_id"),
                                        value_set=pa.array(sorted(users)))))
    if not masks:
        return None
    keep = masks[0]
    for m in masks[1:]:
        keep = pc.and_(keep, m)
    return keep


def purge_dataset(dataset_dir: str | Path, *, before: float | None = None,
                  users: frozenset[str] = frozenset()) -> dict[str, int]:
    """Rewrite a dataset without events older than `before` and without `users`' rows;
    returns the rows deleted per table (nothing is rewritten when nothing matches)."""
    root = Path(dataset_dir)
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"{root}: not a dataset directory (no {MANIFEST})")
    ds = Dataset(root)
    deleted = {name: 0 for name in TIME_COLUMN}
    for name in TIME_COLUMN:  # a dry pass first: most runs delete nothing
        for path in ds.files(name):
            table = pq.read_table(path, schema=TABLES[name])
            keep = _keep_mask(table, name, before, users)
            if keep is not None:
                deleted[name] += table.num_rows - pc.sum(keep).as_py() if table.num_rows else 0
    if not any(deleted.values()):
        return deleted
    writer = DatasetWriter(root, source=ds.source)
    with writer:
        for name in TABLES:
            out = writer.table(name, dedupe=False)
            for path in ds.files(name):
                table = pq.read_table(path, schema=TABLES[name])
                keep = _keep_mask(table, name, before, users)
                out.write_table(table if keep is None else table.filter(keep))
        writer.report.update(ds.manifest.get("report", {}))
        writer.report["retention"] = {"applied_at": datetime.now(UTC).isoformat(),
                                      "before": before, "deleted": deleted}
    if users:
        ErasureList.in_dir(root).add(sorted(users))
    return deleted


def apply_retention(*, event_log: Any = None, datasets: list[Path] | None = None,
                    max_age_days: float | None = None, erased: frozenset[str] = frozenset(),
                    now: float | None = None) -> RetentionReport:
    """Purge the event log and the datasets (see the module docstring)."""
    if max_age_days is not None and max_age_days <= 0:
        raise DatasetError(f"max_age_days must be > 0, got {max_age_days}")
    now = datetime.now(UTC).timestamp() if now is None else now
    before = None if max_age_days is None else now - max_age_days * 86_400
    report = RetentionReport(
        cutoff=None if before is None else datetime.fromtimestamp(before, UTC).isoformat(),
        erased_users=len(erased))
    if event_log is not None:
        report.event_log_deleted = event_log.purge(before=before, users=erased)
    for d in datasets or []:
        report.dataset_deleted[str(d)] = purge_dataset(d, before=before, users=erased)
    return report
