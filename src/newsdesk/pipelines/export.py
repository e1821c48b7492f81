"""Incremental, resumable export of the event log into a dataset directory (pipeline step 1).

`EventLog.export` rewrites the whole dataset on every call; the training loop runs every hour,
so it appends instead: new events are read from the log after a cursor and written as new
Parquet parts, one *chunk* (a contiguous seq range of the log) at a time::

    DATASET/impressions/eventlog-000000001000-000000001999.parquet
    DATASET/interactions/eventlog-000000001000-000000001999.parquet
    DATASET/_eventlog/000000001000-000000001999.json       the chunk's commit marker

Why it is crash-safe (a SIGKILL anywhere, then a re-run, gives the same rows, none lost or
doubled; `tests/pipeline_loop/test_export_crash.py` kills a real process mid-export):

* every file is written to a `.tmp` name, fsynced and renamed, so a file is whole or absent;
* a chunk counts only once its marker exists, and the marker is written after both parts;
* the cursor is not stored separately: it is the highest seq of the committed markers, so it
  can never disagree with the files. A re-run first deletes `eventlog-*` parts that have no
  marker (a chunk cut short by the crash), then resumes after the cursor;
* the log is append-only with increasing seq, so chunks are disjoint; on top of that, an event
  whose key (`request_id` / `event_id`) is already in the dataset is skipped, so a dataset
  that already holds some of the logged events (an earlier `EventLog.export`) gains no copies.

Memory holds the key sets of the two event tables and one chunk of events.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from newsdesk.data.dataset import MANIFEST, Dataset
from newsdesk.data.eventlog.base import KIND_OF, TABLE_OF, Event, EventLog, event_key
from newsdesk.data.eventlog.export import event_row
from newsdesk.data.schema import KEYS, TABLES

MARKER_DIR = "_eventlog"
EVENT_TABLES = ("impressions", "interactions")
_PART = re.compile(r"^eventlog-(\d{12})-(\d{12})\.parquet$")
_MARKER = re.compile(r"^(\d{12})-(\d{12})\.json$")


@dataclass
class ExportStats:
    """What one export did: chunks committed, rows added / skipped per table, the cursor."""

    chunks: int = 0
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_TABLES, 0))
    skipped_duplicates: int = 0
    cleaned_files: int = 0  # parts of a chunk cut short by an earlier crash
    since_seq: int = 0
    last_seq: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "added": dict(self.added),
                "skipped_duplicates": self.skipped_duplicates,
                "cleaned_files": self.cleaned_files, "since_seq": self.since_seq,
                "last_seq": self.last_seq, "seconds": round(self.seconds, 3)}


def committed_chunks(dataset_dir: str | Path) -> list[tuple[int, int]]:
    """(first seq, last seq) of every committed chunk, in order."""
    markers = Path(dataset_dir) / MARKER_DIR
    if not markers.is_dir():
        return []
    out = []
    for p in markers.iterdir():
        m = _MARKER.match(p.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return sorted(out)


def export_cursor(dataset_dir: str | Path) -> int:
    """The highest log seq already in the dataset (0 before the first export)."""
    chunks = committed_chunks(dataset_dir)
    return chunks[-1][1] if chunks else 0


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _clean_uncommitted(root: Path, committed: set[tuple[int, int]]) -> int:
    removed = 0
    for name in EVENT_TABLES:
        table_dir = root / name
        if not table_dir.is_dir():
            continue
        for p in table_dir.iterdir():
            m = _PART.match(p.name)
            orphan = m is not None and (int(m.group(1)), int(m.group(2))) not in committed
            if orphan or p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
                removed += 1
    return removed


def _existing_keys(ds: Dataset) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for name in EVENT_TABLES:
        seen: set[str] = set()
        for path in ds.files(name):
            seen.update(pq.read_table(path, columns=[KEYS[name]]).column(0).to_pylist())
        keys[name] = seen
    return keys


def _write_chunk(root: Path, lo: int, hi: int, rows: dict[str, list[dict[str, Any]]]) -> None:
    stem = f"{lo:012d}-{hi:012d}"
    for name in EVENT_TABLES:
        if rows[name]:
            table = pa.Table.from_pylist(rows[name], schema=TABLES[name])
            (root / name).mkdir(exist_ok=True)
            _atomic_write(root / name / f"eventlog-{stem}.parquet",
                          lambda p, t=table: pq.write_table(t, p, compression="zstd"))
    counts = {name: len(rows[name]) for name in EVENT_TABLES}
    body = json.dumps({"first_seq": lo, "last_seq": hi, "rows": counts,
                       "committed_at": datetime.now(UTC).isoformat()})
    _atomic_write(root / MARKER_DIR / f"{stem}.json", lambda p: p.write_text(body))


def _update_manifest(root: Path, stats: ExportStats) -> None:
    ds = Dataset(root)
    manifest = dict(ds.manifest)
    tables = dict(manifest.get("tables", {}))
    for name in EVENT_TABLES:
        entry = dict(tables.get(name, {}))
        entry["rows"] = ds.count(name)
        tables[name] = entry
    manifest["tables"] = tables
    report = dict(manifest.get("report", {}))
    report["eventlog_incremental"] = {"exported_at": datetime.now(UTC).isoformat(),
                                      **stats.to_dict()}
    manifest["report"] = report
    text = json.dumps(manifest, indent=2, default=str)
    _atomic_write(root / MANIFEST, lambda p: p.write_text(text))


def export_new_events(log: EventLog, dataset_dir: str | Path, *, chunk_events: int = 50_000,
                      on_chunk: Callable[[ExportStats], None] | None = None) -> ExportStats:
    """Append the log's events after the dataset's cursor to the dataset (see module doc).

    The dataset directory must exist (`newsdesk import` / `simulate`). Re-running after a crash
    or after a complete export is safe and adds only what is missing.
    """
    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
    started = time.perf_counter()
    root = Path(dataset_dir)
    ds = Dataset(root)  # raises DatasetError naming the directory when it is not a dataset
    (root / MARKER_DIR).mkdir(exist_ok=True)
    committed = committed_chunks(root)
    stats = ExportStats()
    stats.cleaned_files = _clean_uncommitted(root, set(committed))
    stats.since_seq = stats.last_seq = committed[-1][1] if committed else 0
    keys = _existing_keys(ds)

    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in EVENT_TABLES}
    lo, n = 0, 0

    def commit(hi: int) -> None:
        nonlocal lo, n
        _write_chunk(root, lo, hi, rows)
        for name in EVENT_TABLES:
            stats.added[name] += len(rows[name])
            rows[name].clear()
        stats.chunks += 1
        stats.last_seq = hi
        lo, n = 0, 0
        if on_chunk is not None:
            on_chunk(stats)

    last = stats.since_seq
    event: Event
    for seq, event in log.read(since_seq=stats.since_seq):
        if lo == 0:
            lo = seq
        n += 1
        last = seq
        name = TABLE_OF[KIND_OF[type(event)]]
        key = event_key(event)
        if key in keys[name]:
            stats.skipped_duplicates += 1
        else:
            keys[name].add(key)
            rows[name].append(event_row(event))
        if n >= chunk_events:
            commit(seq)
    if n:
        commit(last)
    if stats.chunks:
        _update_manifest(root, stats)
    stats.seconds = time.perf_counter() - started
    return stats
