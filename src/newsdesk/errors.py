"""The newsdesk exception tree.

    NewsdeskError                 every error newsdesk raises on purpose
    ├── InvalidInput              a record or value that does not fit the schema
    │   └── ImportFailed          an import stopped; carries the per-row error report
    ├── DatasetError              a dataset directory that is missing, partial or inconsistent
    ├── BundleError               a model bundle that is missing, corrupt or mismatched
    ├── ConfigError               a config file or value that is not allowed
    ├── StoreUnavailable          an online store / event log that cannot be reached
    └── MissingDependency         an optional extra is not installed (message has the pip hint)

The CLI prints `str(error)` as one line and exits non-zero; `--debug` shows the traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class NewsdeskError(Exception):
    """Base class of every error newsdesk raises on purpose."""


@dataclass(frozen=True)
class RowError:
    """One bad row: where it is and what is wrong with it."""

    file: str
    line: int  # 1-based line number (text formats) or row number (Parquet)
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: field '{self.field}': {self.message}"


class InvalidInput(NewsdeskError):
    """A record or value that does not fit the schema."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ImportFailed(InvalidInput):
    """An import stopped on bad rows; `errors` lists them (first ones only)."""

    def __init__(self, errors: list[RowError], total_bad: int) -> None:
        first = errors[0] if errors else None
        more = f" (and {total_bad - 1} more bad rows)" if total_bad > 1 else ""
        hint = "; rerun with --skip-invalid to skip and count bad rows"
        super().__init__(f"{first}{more}{hint}", field=first.field if first else None)
        self.errors = errors
        self.total_bad = total_bad


class DatasetError(NewsdeskError):
    """A dataset directory that is missing, partial or inconsistent."""


class BundleError(NewsdeskError):
    """A model bundle that is missing, corrupt or does not match this code."""


class ConfigError(NewsdeskError):
    """A configuration value that is not allowed; the message names the field."""


class StoreUnavailable(NewsdeskError):
    """An online store or event log that cannot be reached right now."""


class MissingDependency(NewsdeskError):
    """An optional dependency is missing; the message says which extra to install."""
