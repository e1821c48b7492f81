"""Where importers put rows: validation, the skip/fail policy, reference tracking, progress.

Every importer parses its source into canonical rows and hands them to an `ImportSink`, one
*source row* at a time (a MIND behaviors line is one source row that yields an impression,
its clicks and a history row). The sink validates all of them and writes all or none, so a
skipped line never leaves half of itself behind. Bad rows become `RowError`s (file, 1-based
line, field); with `skip_invalid=False` the import raises `ImportFailed` at the end, before
anything is committed, so the previous dataset stays in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from newsdesk.data.dataset import DatasetWriter
from newsdesk.data.importers.report import MAX_MISSING_SAMPLE, ImportReport
from newsdesk.data.importers.validate import validate
from newsdesk.errors import ImportFailed, InvalidInput, RowError

Row = tuple[str, dict[str, Any]]  # (table name, canonical row)


class Progress:
    """A rich progress bar over bytes read, on stderr so stdout stays clean for reports.

    A no-op when disabled or when stderr is not a terminal (a bar in a log file is noise).
    """

    def __init__(self, total_bytes: int, *, enabled: bool, label: str) -> None:
        from rich.console import Console

        self._bar: Any = None
        self._task: Any = None
        console = Console(stderr=True)
        if enabled and total_bytes > 0 and console.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), transient=True, console=console,
            )
            self._task = self._bar.add_task(label, total=total_bytes)
            self._bar.start()

    def advance(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, nbytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class ImportSink:
    """Validates source rows and writes the good ones through a `DatasetWriter`."""

    def __init__(self, writer: DatasetWriter, report: ImportReport, *, skip_invalid: bool,
                 progress: Progress | None = None) -> None:
        self.writer = writer
        self.report = report
        self.skip_invalid = skip_invalid
        self.progress = progress or Progress(0, enabled=False, label="")
        self.written: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}
        self._referenced: set[str] = set()
        self._catalog: set[str] = set()

    # -- rows ---------------------------------------------------------------------------------
    def accept(self, rows: Sequence[Row], file: str, line: int,
               columns: Mapping[str, str] | None = None) -> bool:
        """Validate the rows of one source row and write them all, or reject them all.

        `columns` maps canonical field names to the source's column names, so the error names
        the column the user sees in their file. Returns False when the source row was rejected.
        """
        checked: list[Row] = []
        for table, row in rows:
            good, problems = validate(table, row)
            if good is None:
                field, message = problems[0]
                self.reject(file, line, (columns or {}).get(field, field), message)
                return False
            checked.append((table, good))
        if self.report.bad_rows and not self.skip_invalid:
            return True  # the import will fail anyway: keep counting, stop writing
        for table, row in checked:
            if self.writer.table(table).write_row(row):
                self.written[table] = self.written.get(table, 0) + 1
                self._track(table, row)
            else:
                self.duplicates[table] = self.duplicates.get(table, 0) + 1
        return True

    def reject(self, file: str, line: int, field: str, message: str) -> None:
        """Record one bad source row (parse errors call this directly)."""
        self.report.add_error(RowError(file=file, line=line, field=field, message=message))

    def _track(self, table: str, row: dict[str, Any]) -> None:
        if table == "articles":
            self._catalog.add(row["article_id"])
        elif table == "interactions":
            self._referenced.add(row["article_id"])
        else:
            self._referenced.update(row["article_ids"])

    # -- end ----------------------------------------------------------------------------------
    def finish(self) -> ImportReport:
        """Fill the report's counts; raise ImportFailed on bad rows unless skipping them."""
        self.progress.close()
        rep = self.report
        if rep.bad_rows and not self.skip_invalid:
            raise ImportFailed(list(rep.errors), rep.bad_rows)
        rep.rows = {t: self.written.get(t, 0) for t in
                    ("articles", "impressions", "interactions", "histories")}
        rep.duplicates = {t: n for t, n in self.duplicates.items() if n}
        missing = self._referenced - self._catalog
        rep.referenced_article_ids = len(self._referenced)
        rep.missing_article_ids = len(missing)
        rep.missing_sample = sorted(missing)[:MAX_MISSING_SAMPLE]
        return rep


def iter_lines(path: Path, sink: ImportSink, *, encoding: str = "utf-8",
               skip: int = 0) -> Iterator[tuple[int, str]]:
    """Yield `(line_number, text)` of a text file, 1-based, without the line ending.

    Reads bytes so progress is exact; a line that does not decode is rejected (field
    "(encoding)") instead of aborting the whole file. Blank lines are skipped.
    """
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            sink.progress.advance(len(raw))
            if number <= skip:
                continue
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                sink.reject(path.name, number, "(encoding)", f"not valid {encoding}: {exc.reason}")
                continue
            text = text.rstrip("\r\n")
            if text.strip():
                yield number, text


def iter_parquet(path: Path, sink: ImportSink, required: list[str],
                 optional: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(row_number, row_dict)` from a Parquet file in batches (bounded memory).

    A file that is not readable Parquet (truncated, garbage) is an InvalidInput naming it; a
    row whose values cannot become Python values (a time outside datetime's range) is
    rejected with its number and column, and the others go on."""
    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path.name}: field '(file)': not a readable Parquet file ({exc})",
                           field="(file)") from exc
    missing = [c for c in required if c not in names]
    if missing:
        raise InvalidInput(f"{path.name}: field '{missing[0]}': missing column (the file lacks "
                           f"{', '.join(missing)})", field=missing[0])
    columns = required + [c for c in optional if c in names]
    total_rows = max(pf.metadata.num_rows, 1)
    size = path.stat().st_size
    number = 0
    batches = pf.iter_batches(batch_size=8192, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:  # a damaged row group: cannot go on
            raise InvalidInput(f"{path.name}:{number + 1}: field '(file)': unreadable Parquet "
                               f"data ({exc})", field="(file)") from exc
        sink.progress.advance(size * batch.num_rows // total_rows)
        try:
            rows: list[Any] = batch.to_pylist()
        except (pa.ArrowException, ValueError, OverflowError):
            rows = [_row_or_error(batch, i) for i in range(batch.num_rows)]
        for row in rows:
            number += 1
            if isinstance(row, tuple):
                sink.reject(path.name, number, row[0], row[1])
                continue
            yield number, row


def _row_or_error(batch: pa.RecordBatch, i: int) -> dict[str, Any] | tuple[str, str]:
    """Row i as a dict, or (column, message) for the first value Python cannot hold."""
    row = {}
    for name in batch.schema.names:
        try:
            row[name] = batch.column(name)[i].as_py()
        except (pa.ArrowException, ValueError, OverflowError) as exc:
            return name, f"value cannot be read ({type(exc).__name__}: {exc})"
    return row


def total_size(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())
