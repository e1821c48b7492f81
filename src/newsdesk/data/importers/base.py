"""The importer plug point: one subclass per source format, chosen by a short name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from newsdesk.data.importers.sink import ImportSink
from newsdesk.errors import InvalidInput


class Importer(ABC):
    """Reads one source format into canonical rows.

    `input_files` names the files `read` will open (for the progress total and an early,
    clear error when the folder is not what it should be); `read` streams them into the sink
    and must not hold a whole table in memory.
    """

    kind: str = ""
    rows_per_part: int = 50_000  # Parquet part size; also bounds the writer's row buffer

    @abstractmethod
    def input_files(self, src: Path) -> list[Path]:
        """The files of `src` this importer will read; raises InvalidInput if some are missing."""

    @abstractmethod
    def read(self, src: Path, sink: ImportSink) -> None:
        """Stream every source row of `src` into `sink` (`sink.accept` / `sink.reject`)."""


def need(folder: Path, name: str, kind: str) -> Path:
    """`folder / name`, or InvalidInput saying which file a `kind` folder must contain."""
    path = folder / name
    if not path.is_file():
        raise InvalidInput(f"{folder} has no {name}; a {kind} folder needs it", field="src")
    return path
