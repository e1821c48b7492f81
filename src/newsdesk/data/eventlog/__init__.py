"""The durable event log: served impressions and interactions, de-duplicated, exportable.

Backends are chosen by a short URL and imported lazily::

    open_event_log("sqlite:///events.db")       # relative path (SQLAlchemy convention)
    open_event_log("sqlite:////var/lib/nd.db")  # absolute path: four slashes
    open_event_log("memory://")                 # in-process, for tests and the demo
    open_event_log("redis://127.0.0.1:6379/0")  # a Redis Stream shared by several replicas

A plain filesystem path is taken as a SQLite file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from newsdesk.data.eventlog.base import (
    AppendResult,
    Event,
    EventLog,
    ExportResult,
    coerce_batch,
    coerce_event,
)
from newsdesk.errors import ConfigError

__all__ = [
    "AppendResult",
    "Event",
    "EventLog",
    "ExportResult",
    "coerce_batch",
    "coerce_event",
    "open_event_log",
]

SCHEMES = ("sqlite", "memory", "redis", "rediss", "unix")


def open_event_log(url: str | Path, **options: Any) -> EventLog:
    """Open the event log named by `url`; `options` go to the backend's constructor."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:  # a bare path
        scheme, rest = "sqlite", "/" + text
    if scheme == "memory":
        from newsdesk.data.eventlog.memory import MemoryEventLog

        return MemoryEventLog(**options)
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigError(f"event log url {text!r}: no database path after 'sqlite:///'")
        from newsdesk.data.eventlog.sqlite import SQLiteEventLog

        return SQLiteEventLog(path, **options)
    if scheme in ("redis", "rediss", "unix"):
        from newsdesk.data.eventlog.redis_streams import RedisStreamEventLog

        return RedisStreamEventLog(text, **options)
    raise ConfigError(
        f"event log url {text!r}: unknown scheme {scheme!r}; expected one of {list(SCHEMES)}"
    )
