"""A dataset directory: Parquet tables of the canonical schema plus a manifest.

Layout::

    DATASET_DIR/
      manifest.json             format version, source, row counts, import report
      articles/part-00000.parquet ...
      impressions/part-*.parquet
      interactions/part-*.parquet
      histories/part-*.parquet

Writers stream: rows are buffered and flushed as Parquet parts of `rows_per_part` rows, so
memory stays bounded whatever the input size. A `DatasetWriter` stages everything in a hidden
directory and swaps it into place on `commit()`, so a re-run replaces the previous import
(idempotent) and a crashed import never leaves a half-written table behind.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from newsdesk.data.schema import KEYS, TABLES
from newsdesk.errors import DatasetError

FORMAT = "newsdesk-dataset/1"
MANIFEST = "manifest.json"


class TableWriter:
    """Streams rows of one table into Parquet parts of a fixed schema."""

    def __init__(
        self, directory: Path, schema: pa.Schema, *, rows_per_part: int = 500_000,
        dedupe_key: str | None = None,
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.rows_per_part = rows_per_part
        self.dedupe_key = dedupe_key
        self.rows_written = 0
        self.duplicates = 0
        self._seen: set[str] = set()
        self._buffer: list[dict[str, Any]] = []
        self._batches: list[pa.Table] = []
        self._buffered_batch_rows = 0
        self._parts = 0
        directory.mkdir(parents=True, exist_ok=True)

    def write_row(self, row: Mapping[str, Any]) -> bool:
        """Buffer one row (a dict of column -> value); False if its key was already written."""
        if self.dedupe_key is not None:
            key = row[self.dedupe_key]
            if key in self._seen:
                self.duplicates += 1
                return False
            self._seen.add(key)
        self._buffer.append(dict(row))
        if len(self._buffer) + self._buffered_batch_rows >= self.rows_per_part:
            self.flush()
        return True

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write_row(row)

    def write_table(self, table: pa.Table | pl.DataFrame) -> None:
        """Buffer a columnar batch (fast path for the simulator); no de-duplication."""
        if isinstance(table, pl.DataFrame):
            table = table.to_arrow()
        for f in self.schema:  # a column added to the schema later (nullable): null in old data
            if f.nullable and f.name not in table.column_names:
                table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
        table = table.select(self.schema.names).cast(self.schema)
        self._batches.append(table)
        self._buffered_batch_rows += table.num_rows
        if len(self._buffer) + self._buffered_batch_rows >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        pieces = list(self._batches)
        if self._buffer:
            pieces.append(pa.Table.from_pylist(self._buffer, schema=self.schema))
        if not pieces:
            return
        table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
        self._write_part(table)
        self._buffer.clear()
        self._batches.clear()
        self._buffered_batch_rows = 0

    def close(self) -> None:
        self.flush()
        if self._parts == 0:  # an empty table still gets one file, so readers see its schema
            self._write_part(self.schema.empty_table())

    def _write_part(self, table: pa.Table) -> None:
        path = self.directory / f"part-{self._parts:05d}.parquet"
        pq.write_table(table, path, compression="zstd")
        self._parts += 1
        self.rows_written += table.num_rows


class DatasetWriter:
    """Writes a whole dataset directory atomically.

    Usage::

        with DatasetWriter(out, source="mind") as w:
            w.table("articles").write_row({...})
            w.report["missing_articles"] = 3
        # committed here; on exception the staging directory is removed
    """

    def __init__(self, root: str | Path, *, source: str, rows_per_part: int = 500_000) -> None:
        self.root = Path(root)
        self.source = source
        self.rows_per_part = rows_per_part
        self.report: dict[str, Any] = {}
        self._staging = self.root / f".staging-{uuid.uuid4().hex[:8]}"
        self._writers: dict[str, TableWriter] = {}

    def table(self, name: str, *, dedupe: bool = True) -> TableWriter:
        if name not in TABLES:
            raise DatasetError(f"unknown table '{name}'; expected one of {sorted(TABLES)}")
        if name not in self._writers:
            self._writers[name] = TableWriter(
                self._staging / name, TABLES[name], rows_per_part=self.rows_per_part,
                dedupe_key=KEYS[name] if dedupe else None,
            )
        return self._writers[name]

    def __enter__(self) -> DatasetWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            shutil.rmtree(self._staging, ignore_errors=True)

    def commit(self) -> None:
        for name in TABLES:  # every dataset has every table, possibly empty
            self.table(name)
        counts = {}
        for name, writer in self._writers.items():
            writer.close()
            counts[name] = {"rows": writer.rows_written, "duplicates_skipped": writer.duplicates}
        manifest = {
            "format": FORMAT,
            "source": self.source,
            "created_at": datetime.now(UTC).isoformat(),
            "tables": counts,
            "report": self.report,
        }
        (self._staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        # Swap table by table: rename the old one aside, move the new one in, then delete.
        trash = self.root / f".trash-{uuid.uuid4().hex[:8]}"
        trash.mkdir()
        for entry in [*TABLES, MANIFEST]:
            target = self.root / entry
            if target.exists():
                os.replace(target, trash / entry)
            os.replace(self._staging / entry, target)
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(self._staging, ignore_errors=True)


class Dataset:
    """Read access to a dataset directory (lazy Polars scans over the Parquet parts)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise DatasetError(
                f"{self.root} is not a newsdesk dataset (no {MANIFEST}); "
                "create one with 'newsdesk import' or 'newsdesk simulate'"
            )
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{manifest_path} is not valid JSON: {exc}") from exc
        if self.manifest.get("format") != FORMAT:
            raise DatasetError(
                f"{manifest_path}: format {self.manifest.get('format')!r} is not {FORMAT!r}"
            )

    def files(self, table: str) -> list[Path]:
        if table not in TABLES:
            raise DatasetError(f"unknown table '{table}'; expected one of {sorted(TABLES)}")
        return sorted((self.root / table).glob("*.parquet"))

    def scan(self, table: str) -> pl.LazyFrame:
        """A lazy frame over one table; empty (with the right columns) if it has no rows."""
        files = self.files(table)
        if not files:
            return pl.from_arrow(TABLES[table].empty_table()).lazy()  # type: ignore[union-attr]
        # the canonical schema, not the first file's: parts written before a column was added
        # (e.g. impressions.policy) read it as null
        schema = pl.from_arrow(TABLES[table].empty_table()).schema  # type: ignore[union-attr]
        return pl.scan_parquet([str(f) for f in files], schema=schema, missing_columns="insert")

    def read(self, table: str) -> pl.DataFrame:
        return self.scan(table).collect()

    def arrow(self, table: str) -> pa.Table:
        files = self.files(table)
        if not files:
            return TABLES[table].empty_table()
        return pa.concat_tables([pq.read_table(f, schema=TABLES[table]) for f in files])

    def count(self, table: str) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files(table))

    @property
    def source(self) -> str:
        return str(self.manifest.get("source", "unknown"))
