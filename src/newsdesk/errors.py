"""The newsdesk exception tree.

    NewsdeskError                 every error newsdesk raises on purpose
    ├── InvalidInput              a record or value that does not fit the schema
    │   └── ImportFailed          an import stopped; carries the per-row error report
    ├── DatasetError              a dataset directory that is missing, partial or inconsistent
    ├── BundleError               a model bundle that is missing, corrupt or mismatched
    ├── ConfigError               a config file or value that is not allowed
    ├── StoreUnavailable          an online store / event log that cannot be reached
    ├── MissingDependency         an optional extra is not installed (message has the pip hint)
    └── LLMError                  an LLM call failed (tree below, at the LLM classes)

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


# --- LLM errors (newsdesk.llm). Every LLM feature catches `LLMError` and falls back to its
# non-LLM path; the subclasses tell the operations layer what to do (retry, count, give up).
#
#     NewsdeskError
#     └── LLMError                 any failure of an LLM call; callers fall back on it
#         ├── LLMTimeout           the call did not finish within its timeout (retried)
#         ├── LLMUnavailable       the provider cannot be reached or answered 5xx/429 (retried)
#         │   └── LLMCircuitOpen   the breaker is open: failed fast, the provider was not called
#         ├── LLMInvalidOutput     the model answered, but not what the schema asks for
#         ├── LLMBudgetExceeded    a budget (requests/day, tokens per task) refuses the call
#         └── LLMDisabled          the global switch is off (setting or admin route)


class LLMError(NewsdeskError):
    """Any failure of an LLM call; every LLM feature falls back to its non-LLM path on it."""

    def __init__(self, message: str, *, provider: str | None = None,
                 task: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.task = task


class LLMTimeout(LLMError):
    """The call did not finish within its timeout."""


class LLMUnavailable(LLMError):
    """The provider cannot be reached, or answered with a server error or a rate limit."""


class LLMCircuitOpen(LLMUnavailable):
    """The provider's circuit breaker is open: failed fast without calling it."""


class LLMInvalidOutput(LLMError):
    """The model answered, but the answer does not parse or fit the schema; `text` keeps it."""

    def __init__(self, message: str, *, text: str = "", provider: str | None = None,
                 task: str | None = None) -> None:
        super().__init__(message, provider=provider, task=task)
        self.text = text


class LLMBudgetExceeded(LLMError):
    """A budget (requests per day, tokens per task) refuses the call."""


class LLMDisabled(LLMError):
    """The global LLM switch is off (setting `NEWSDESK_LLM_ENABLED` or the admin route)."""
