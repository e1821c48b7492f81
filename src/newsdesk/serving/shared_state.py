"""The change log that keeps several serving processes in step: one SQLite file in the state dir.

What one worker changes at runtime, the others must apply: articles upserted or deleted (the
live catalog and every loaded model), bundles loaded, promoted or rolled back (the model
registry). Each change is appended here with the pid of the worker that made it; every worker
tails the log by sequence number (`ClusterSync`, a few times a second) and applies the changes
of the others in order. One log for both kinds keeps their order: a model loaded after a PUT
gets the article replayed, like in one process.

    changes(seq, kind, version, body, origin, ts)   kind: upsert | delete | load | promote |
                                                    rollback
    workers(pid, heartbeat, seq, active, loaded)    each worker's applied seq and models

`workers` lets a promote wait until every live worker has loaded the bundle before anyone
swaps (see `ClusterSync.promote`). The parent clears both tables when the service starts, so a
new `newsdesk serve` starts from its dataset and bundles as one process does; a worker that is
restarted mid-run replays the log from the start and catches up before it reports ready.

SQLite in WAL mode is safe across processes; a busy timeout absorbs concurrent appends.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsdesk.errors import StoreUnavailable

KINDS = ("upsert", "delete", "load", "promote", "rollback")


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str
    version: str | None  # bundle version (load / promote / rollback)
    body: str | None  # JSON: the articles of an upsert; the article id of a delete
    origin: int  # pid of the worker that made the change


@dataclass(frozen=True, slots=True)
class WorkerState:
    pid: int
    heartbeat: float  # Unix s
    seq: int  # last change applied
    active: str | None
    loaded: list[str]


class SharedState:
    """The change log and worker table in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s,
                                         isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # runtime changes, not the events
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " kind TEXT NOT NULL, version TEXT, body TEXT, origin INTEGER NOT NULL,"
                " ts REAL NOT NULL)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS workers (pid INTEGER PRIMARY KEY, heartbeat REAL,"
                " seq INTEGER, active TEXT, loaded TEXT)")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"shared state {self.path}: {exc}") from exc

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"shared state {self.path}: {exc}") from exc

    def reset(self) -> None:
        """Forget every change and worker (the parent, before it starts the workers)."""
        self._run("DELETE FROM changes")
        self._run("DELETE FROM workers")

    def append(self, kind: str, origin: int, *, version: str | None = None,
               body: str | None = None) -> int:
        """Append one change; returns its sequence number."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        rows = self._run("INSERT INTO changes (kind, version, body, origin, ts) VALUES "
                         "(?, ?, ?, ?, ?) RETURNING seq",
                         (kind, version, body, origin, time.time()))
        return int(rows[0][0])

    def since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Changes after `seq`, oldest first."""
        rows = self._run("SELECT seq, kind, version, body, origin FROM changes WHERE seq > ? "
                         "ORDER BY seq LIMIT ?", (seq, limit))
        return [Change(int(s), str(k), v, b, int(o)) for s, k, v, b, o in rows]

    def heartbeat(self, pid: int, seq: int, active: str | None, loaded: list[str]) -> None:
        self._run("INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?)",
                  (pid, time.time(), seq, active, json.dumps(sorted(loaded))))

    def workers(self, max_age_s: float = 3.0) -> list[WorkerState]:
        """Workers whose heartbeat is at most `max_age_s` old."""
        rows = self._run("SELECT pid, heartbeat, seq, active, loaded FROM workers WHERE "
                         "heartbeat >= ?", (time.time() - max_age_s,))
        return [WorkerState(int(p), float(h), int(s), a, json.loads(lo or "[]"))
                for p, h, s, a, lo in rows]

    def forget(self, pid: int) -> None:
        self._run("DELETE FROM workers WHERE pid = ?", (pid,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
