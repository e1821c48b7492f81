"""The one global LLM switch, shared by every serving worker through a file in the state dir.

    effective = NEWSDESK_LLM_ENABLED (the setting, fixed at start)
                AND the runtime flag (admin route; default on; one row in llm_switch.db)

The setting is the hard off: with it false nothing can turn LLM features on at runtime. The
admin route writes the runtime flag; every worker reads it at most `refresh_s` after the
last read (an indexed one-row SELECT), so a flip reaches all workers within that time, without
a restart. The flag persists in the state dir across restarts, like the rollout kill switch,
until an admin flips it back. Without a path (tests, batch jobs) the flag is in-process only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

SWITCH_DB = "llm_switch.db"


class LLMSwitch:
    """Is the LLM layer on? (see the module docstring)."""

    def __init__(self, setting: bool = True, path: Path | None = None, *,
                 refresh_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.setting = setting
        self.path = Path(path) if path is not None else None
        self.refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._flag = True
        self._read_at = float("-inf")
        self._conn: sqlite3.Connection | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=10, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS switch (name TEXT PRIMARY KEY, "
                               "enabled INTEGER NOT NULL, changed_at REAL, changed_by TEXT)")

    @classmethod
    def in_state_dir(cls, setting: bool, state_dir: Path, **options: float) -> LLMSwitch:
        return cls(setting, Path(state_dir) / SWITCH_DB, **options)

    @property
    def enabled(self) -> bool:
        if not self.setting:
            return False
        return self.runtime_flag()

    def runtime_flag(self) -> bool:
        with self._lock:
            if self._conn is not None and self._clock() - self._read_at >= self.refresh_s:
                try:
                    row = self._conn.execute(
                        "SELECT enabled FROM switch WHERE name='llm'").fetchone()
                    self._flag = True if row is None else bool(row[0])
                    self._read_at = self._clock()
                except sqlite3.Error:
                    pass  # keep the last value read: a locked file must not flap the switch
            return self._flag

    def set(self, enabled: bool, *, by: str = "admin") -> bool:
        """Set the runtime flag (for every worker); returns the effective state here."""
        with self._lock:
            if self._conn is not None:
                self._conn.execute("INSERT OR REPLACE INTO switch VALUES ('llm', ?, ?, ?)",
                                   (int(enabled), time.time(), by))
            self._flag = enabled
            self._read_at = self._clock()
        return self.enabled

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
