"""The EventLog contract: a durable, de-duplicating, append-only log of served events.

The serving API appends impressions (keyed by `request_id`) and interactions (keyed by
`event_id`) as they arrive; training reads them back through `export`, which merges them into a
dataset directory (the loop from serving back to training).

Contract (every backend; the same tests run against each):

* `append(batch)` validates the whole batch first: one bad record raises `InvalidInput` naming
  the field and the record's index, and nothing of that batch is stored;
* `append` returns only after the batch is durable (it survives a SIGKILL of the process, and
  for SQLite a power loss too); a batch is all-or-nothing;
* a record whose key is already logged (or repeated inside the batch) is ignored and counted in
  `AppendResult.duplicates`; the first version of a key wins;
* `read(since_seq)` yields `(seq, record)` in append order; seq is strictly increasing, so a
  consumer resumes with the last seq it saw;
* `export(dir)` is idempotent: exporting twice (or after more appends) yields no duplicates.

Records may be given as `Impression` / `Interaction` instances or as plain dicts (the JSON body of
an API request): a dict with `"kind": "impression" | "interaction"` says what it is; without
`kind`, a dict with an `event_id` is an interaction and anything else an impression.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from newsdesk.data.schema import Impression, Interaction
from newsdesk.errors import InvalidInput

Event = Impression | Interaction
Kind = Literal["impression", "interaction"]

KIND_OF: dict[type, Kind] = {Impression: "impression", Interaction: "interaction"}
MODEL_OF: dict[str, type[Impression] | type[Interaction]] = {
    "impression": Impression,
    "interaction": Interaction,
}
TABLE_OF: dict[str, str] = {"impression": "impressions", "interaction": "interactions"}


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one `append` call did: new records stored, and records ignored as duplicates."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class ExportResult:
    """What one `export` did, per table: rows added now and rows in the table afterwards."""

    added: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)


def event_key(event: Event) -> str:
    """The de-duplication key of an event (request_id of an impression, event_id otherwise)."""
    return event.request_id if isinstance(event, Impression) else event.event_id


def _field_of(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    return loc or "record"


def coerce_event(record: Event | Mapping[str, Any], index: int = 0) -> Event:
    """Validate one record into an Impression or Interaction; InvalidInput names the field."""
    if isinstance(record, Impression | Interaction):
        return record
    if not isinstance(record, Mapping):
        raise InvalidInput(
            f"record {index}: expected an Impression, an Interaction or a dict, "
            f"got {type(record).__name__}",
            field="record",
        )
    data = dict(record)
    kind = data.pop("kind", None)
    if kind is None:
        kind = "interaction" if "event_id" in data else "impression"
    model = MODEL_OF.get(str(kind))
    if model is None:
        raise InvalidInput(
            f"record {index}: field 'kind' must be 'impression' or 'interaction', got {kind!r}",
            field="kind",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        name = _field_of(exc)
        msg = exc.errors()[0].get("msg", "invalid value")
        raise InvalidInput(f"record {index} ({kind}): field '{name}': {msg}", field=name) from exc


def coerce_batch(records: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
    """Validate a whole batch before anything is written (batches are all-or-nothing)."""
    return [coerce_event(record, i) for i, record in enumerate(records)]


class EventLog(ABC):
    """A durable append-only log of impressions and interactions (see the module docstring)."""

    @abstractmethod
    def append(self, records: Iterable[Event | Mapping[str, Any]]) -> AppendResult:
        """Store a batch durably; returns once it is durable. Raises InvalidInput (nothing
        stored) or StoreUnavailable (nothing acknowledged)."""

    @abstractmethod
    def read(self, since_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, Event]]:
        """Logged events with seq > since_seq in append order, at most `limit` of them."""

    @abstractmethod
    def count(self) -> int:
        """Number of distinct events stored."""

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """A small JSON-able status dict; `ok` is False when the log cannot take writes.
        Never raises."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources; further appends raise StoreUnavailable."""

    def event_keys(self) -> Iterator[tuple[str, str]]:
        """(kind, key) of every logged event: "interaction" with its event_id, "impression"
        with its request_id. Backends that store the key apart override this to skip
        decoding whole events (a store's rebuild asks for every key of a log of millions)."""
        for _, event in self.read(0):
            yield KIND_OF[type(event)], event_key(event)

    def purge(self, *, before: float | None = None,
              users: frozenset[str] = frozenset()) -> int:
        """Delete the events older than `before` (Unix s, event time) and every event of
        `users` (retention and erasure, data/retention.py); returns how many were deleted.
        Their keys are forgotten too, so a purged event sent again is accepted again."""
        raise NotImplementedError(f"{type(self).__name__} cannot purge events")

    def export(self, dataset_dir: str | Path, *, source: str = "eventlog",
               erased: frozenset[str] = frozenset()) -> ExportResult:
        """Merge every logged event into the dataset directory (created if missing).

        Keeps the other tables (articles, histories) and the existing rows as they are; logged
        events whose key is already in the table are skipped, so re-exporting is a no-op.
        Readers in `erased` or in the dataset's erasure list are left out (data/erasure.py).
        """
        from newsdesk.data.eventlog.export import export_events

        return export_events(self.read(), dataset_dir, source=source, erased=erased)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
