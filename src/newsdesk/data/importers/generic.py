"""Generic JSONL / CSV / Parquet files with a YAML column mapping (docs/generic-import.md).

    tables:
      articles:
        file: articles.jsonl          # relative to SRC (a folder); format from the extension
        columns: {id: article_id, headline: title, published: published_at}
        timestamps: {format: "%Y-%m-%d %H:%M"}   # or {unit: s|ms|us}; default ISO 8601
        defaults: {language: en}
      interactions:
        file: events.csv
        list_separator: "|"           # CSV only: how list cells are split (default: space)
        columns: {...}

`columns` maps a source column to a canonical field of that table; unmapped source columns are
ignored, unmapped canonical fields take `defaults` and then the schema's defaults. Values are
coerced to the field's type (ids to strings, timestamps by the table's rule, CSV list cells
split); a value that cannot be coerced or validated is a RowError naming the *source* column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from newsdesk.data.importers.base import Importer
from newsdesk.data.importers.sink import ImportSink, iter_lines, iter_parquet
from newsdesk.data.importers.validate import as_id, as_utc
from newsdesk.data.schema import TABLES
from newsdesk.errors import ConfigError, InvalidInput

TIME_FIELDS = {"published_at", "updated_at", "expires_at", "timestamp", "as_of"}
LIST_FIELDS = {"article_ids", "entities", "tags", "propensities"}
FLOAT_FIELDS = {"dwell_seconds", "rating"}
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}


class TableMapping:
    """The mapping of one canonical table, checked when the YAML is loaded."""

    def __init__(self, table: str, spec: dict[str, Any], where: str) -> None:
        if table not in TABLES:
            raise ConfigError(f"{where}: unknown table '{table}'; expected one of {list(TABLES)}")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: tables.{table} must be a mapping")
        fields = set(TABLES[table].names)
        self.table = table
        self.file = spec.get("file")
        self.format = spec.get("format")
        self.columns: dict[str, str] = dict(spec.get("columns") or {})
        self.defaults: dict[str, Any] = dict(spec.get("defaults") or {})
        self.separator = spec.get("list_separator", " ")
        ts = spec.get("timestamps") or {}
        self.time_format: str | None = ts.get("format")
        self.time_unit: str | None = ts.get("unit")
        for key in set(spec) - {"file", "format", "columns", "defaults", "list_separator",
                                "timestamps"}:
            raise ConfigError(f"{where}: tables.{table}.{key} is not a mapping option")
        for src_col, field in self.columns.items():
            if field not in fields:
                raise ConfigError(f"{where}: tables.{table}.columns.{src_col}: '{field}' is not "
                                  f"a field of {table}; expected one of {sorted(fields)}")
        for field in self.defaults:
            if field not in fields:
                raise ConfigError(f"{where}: tables.{table}.defaults.{field} is not a field")
        if self.time_unit is not None and self.time_unit not in UNITS:
            raise ConfigError(f"{where}: tables.{table}.timestamps.unit must be one of "
                              f"{list(UNITS)}, not {self.time_unit!r}")
        if self.format is not None and self.format not in {"jsonl", "csv", "parquet"}:
            raise ConfigError(f"{where}: tables.{table}.format must be jsonl, csv or parquet")
        # canonical field -> source column, to name the user's column in errors
        self.source_of = {field: col for col, field in self.columns.items()}

    def path(self, src: Path) -> Path:
        if src.is_file():
            return src
        if not self.file:
            raise ConfigError(f"tables.{self.table}.file is needed when SRC is a folder")
        return src / self.file

    def file_format(self, path: Path) -> str:
        fmt = self.format or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ConfigError(f"tables.{self.table}: cannot tell the format of {path.name}; "
                              "set format: jsonl | csv | parquet")
        return fmt

    # -- values -------------------------------------------------------------------------------
    def coerce(self, field: str, value: Any) -> Any:
        """The source value as the canonical field's type; ValueError says what is wrong."""
        if value is None or (isinstance(value, str) and value.strip() == ""
                             and field not in ("abstract", "body", "subcategory", "url")):
            return None
        if field in TIME_FIELDS:
            return self._time(value)
        if field in LIST_FIELDS:
            if isinstance(value, str):
                value = value.split(self.separator) if self.separator != " " else value.split()
            if not isinstance(value, list):
                raise ValueError(f"expected a list, got {type(value).__name__}")
            if field == "propensities":
                return [float(v) for v in value]
            return [as_id(v.strip() if isinstance(v, str) else v) for v in value]
        if field in FLOAT_FIELDS:
            return float(value)
        if isinstance(value, str):
            return value.strip()
        return as_id(value)

    def _time(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return as_utc(value)  # type: ignore[return-value]
        if isinstance(value, str) and self.time_format:
            try:
                return as_utc(datetime.strptime(value.strip(), self.time_format))  # type: ignore
            except ValueError:
                raise ValueError(f"'{value}' does not match format {self.time_format!r}") from None
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric or (isinstance(value, str) and self.time_unit):
            number = float(value)
            return datetime.fromtimestamp(number * UNITS[self.time_unit or "s"], UTC)
        if isinstance(value, str):
            try:
                return as_utc(datetime.fromisoformat(value.strip()))  # type: ignore[return-value]
            except ValueError:
                raise ValueError(f"'{value}' is not an ISO 8601 time; set timestamps.format "
                                 "or timestamps.unit in the mapping") from None
        raise ValueError(f"cannot read a time from {type(value).__name__}")


def load_mapping(path: Path) -> dict[str, TableMapping]:
    """Read and check a mapping YAML; ConfigError names the offending key."""
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read mapping {path}: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("tables"), dict) or not spec["tables"]:
        raise ConfigError(f"{path}: a mapping needs a non-empty 'tables:' section")
    return {t: TableMapping(t, s, str(path)) for t, s in spec["tables"].items()}


class GenericImporter(Importer):
    kind = "generic"

    def __init__(self, mapping: Path | None) -> None:
        self.mapping_path = mapping

    def _tables(self, src: Path) -> dict[str, TableMapping]:
        path = self.mapping_path
        if path is None and src.is_dir() and (src / "mapping.yaml").is_file():
            path = src / "mapping.yaml"
        if path is None:
            raise InvalidInput("import generic needs --mapping (see docs/generic-import.md)",
                               field="mapping")
        tables = load_mapping(path)
        if src.is_file() and len(tables) > 1:
            raise ConfigError("SRC is a single file but the mapping has several tables; "
                              "pass the folder that holds their files")
        return tables

    def input_files(self, src: Path) -> list[Path]:
        files = []
        for mapping in self._tables(src).values():
            path = mapping.path(src)
            if not path.is_file():
                raise InvalidInput(f"{path} does not exist (tables.{mapping.table}.file)",
                                   field="file")
            files.append(path)
        return files

    def read(self, src: Path, sink: ImportSink) -> None:
        # catalog first, so the order of the mapping file does not matter
        tables = self._tables(src)
        for name in TABLES:
            if name in tables:
                self._table(tables[name], src, sink)

    def _table(self, m: TableMapping, src: Path, sink: ImportSink) -> None:
        path = m.path(src)
        fmt = m.file_format(path)
        records: Iterator[tuple[int, dict[str, Any]]]
        if fmt == "jsonl":
            records = _jsonl(path, sink)
        elif fmt == "csv":
            records = _csv(path, sink)
        else:
            records = iter_parquet(path, sink, [], list(m.columns))
        for number, rec in records:
            row = dict(m.defaults)
            bad = False
            for col, field in m.columns.items():
                if col not in rec:
                    continue
                try:
                    value = m.coerce(field, rec[col])
                except (ValueError, TypeError, OverflowError, OSError) as exc:
                    sink.reject(path.name, number, col, str(exc))
                    bad = True
                    break
                if value is not None:
                    row[field] = value
            if not bad:
                sink.accept([(m.table, row)], path.name, number, m.source_of)


def _jsonl(path: Path, sink: ImportSink) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in iter_lines(path, sink):
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            sink.reject(path.name, number, "(json)", f"not valid JSON: {exc}")
            continue
        if not isinstance(rec, dict):
            sink.reject(path.name, number, "(json)", "each line must be a JSON object")
            continue
        yield number, rec


def _csv(path: Path, sink: ImportSink) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV records with a header; quoted cells may span lines (numbered by their first line).

    Bytes that are not UTF-8 are kept as surrogates while parsing (the csv module cannot
    resume inside a decode error), and the record holding them is rejected with the field
    "(encoding)", so --skip-invalid skips it like any other bad row."""
    def text_lines() -> Iterator[str]:
        with path.open("rb") as fh:
            for raw in fh:
                sink.progress.advance(len(raw))
                yield raw.decode("utf-8", errors="surrogateescape")

    reader = csv.reader(text_lines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise InvalidInput(f"{path.name}:1: field '(header)': {exc}", field="(header)") from exc
    if any(_undecodable(h) for h in header):
        raise InvalidInput(f"{path.name}:1: field '(header)': not valid UTF-8",
                           field="(header)")
    last = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader cannot go on after this: stop with the line
            raise InvalidInput(f"{path.name}:{reader.line_num}: field '(csv)': {exc}",
                               field="(csv)") from exc
        number, last = last + 1, reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if any(_undecodable(c) for c in cells):
            sink.reject(path.name, number, "(encoding)", "not valid UTF-8")
            continue
        if len(cells) != len(header):
            sink.reject(path.name, number, "(columns)",
                        f"expected {len(header)} columns as in the header, found {len(cells)}")
            continue
        yield number, dict(zip(header, cells, strict=True))


def _undecodable(text: str) -> bool:
    """True when surrogateescape decoding kept bytes that are not UTF-8 in `text`."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)
