"""Merge logged events into a dataset directory: the loop from serving back to training.

Shared by every EventLog backend (`EventLog.export` calls it with the backend's `read()`).
The merge streams: existing Parquet parts are copied file by file and logged events are written
in parts, so memory holds the key sets of the two event tables, not the tables themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsdesk.data.dataset import MANIFEST, Dataset, DatasetWriter
from newsdesk.data.erasure import ErasureList, erased_users
from newsdesk.data.eventlog.base import KIND_OF, TABLE_OF, Event, ExportResult, event_key
from newsdesk.data.schema import KEYS, TABLES

_EVENT_TABLES = ("impressions", "interactions")


def event_row(event: Event) -> dict[str, Any]:
    """One event as a row of its Arrow table (enum values as plain strings)."""
    row = event.model_dump()
    if "type" in row:
        row["type"] = str(row["type"].value if hasattr(row["type"], "value") else row["type"])
    return row


def export_events(
    events: Iterable[tuple[int, Event]], dataset_dir: str | Path, *, source: str = "eventlog",
    erased: frozenset[str] = frozenset(),
) -> ExportResult:
    """Write existing tables plus the logged events not already present; returns the counts.

    Readers in `erased` (plus those already in the dataset's erasure list) are dropped: none
    of their logged events is written and the existing tables are rewritten without their
    rows (data/erasure.py); the dataset keeps the merged list."""
    root = Path(dataset_dir)
    erased = erased | erased_users(root)
    existing = Dataset(root) if (root / MANIFEST).is_file() else None
    report: dict[str, Any] = dict(existing.manifest.get("report", {})) if existing else {}
    seen: dict[str, set[str]] = {name: set() for name in _EVENT_TABLES}
    added = {name: 0 for name in _EVENT_TABLES}

    writer = DatasetWriter(root, source=existing.source if existing else source)
    with writer:
        if existing is not None:
            for name in TABLES:
                table_writer = writer.table(name, dedupe=False)
                for path in existing.files(name):
                    table = pq.read_table(path, schema=TABLES[name])
                    if erased and "user_id" in table.column_names:
                        keep = pc.invert(pc.is_in(table.column("user_id"),
                                                  value_set=pa.array(sorted(erased))))
                        table = table.filter(keep)
                    if name in seen:
                        seen[name].update(table.column(KEYS[name]).to_pylist())
                    table_writer.write_table(table)
        for _seq, event in events:
            if event.user_id in erased:
                continue
            name = TABLE_OF[KIND_OF[type(event)]]
            key = event_key(event)
            if key in seen[name]:
                continue
            seen[name].add(key)
            # dedupe=False: `seen` already covers both the old rows and the new ones
            writer.table(name, dedupe=False).write_row(event_row(event))
            added[name] += 1
        report["eventlog_export"] = {
            "exported_at": datetime.now(UTC).isoformat(),
            "added": dict(added),
        }
        writer.report.update(report)
    if erased:  # the dataset carries the list of readers it must not contain
        ErasureList.in_dir(root).add(sorted(erased))
    total = {name: len(seen[name]) for name in _EVENT_TABLES}
    return ExportResult(added=added, total=total)
