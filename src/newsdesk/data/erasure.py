"""The erasure list: durable tombstones of readers whose data must not be used again.

`DELETE /v1/users/{id}` (the right to erasure) removes the reader's online state at once and
appends the id here; everything that turns logged data into something reusable consults the
list afterwards:

* `EventLog.export` (data/eventlog/export.py) writes no event of a listed reader, rewrites the
  dataset's existing tables without their rows, and leaves a copy of the list in the dataset
  directory (`erasures.jsonl`), so the dataset says itself whom it must not contain;
* `newsdesk train` (features/training_log.load_log) drops the readers listed in the dataset's
  `erasures.jsonl` (plus an explicit `--erasures FILE`) from impressions, clicks and histories;
* the online store's start-up load from a dataset skips them (features/bootstrap.py), so a
  restart does not bring their history back;
* `newsdesk retention apply --erasures FILE` purges their events from the event log itself.

The file is JSON lines, `{"user_id": ..., "erased_at": unix_s}`, appended with one `write` on
an O_APPEND descriptor and fsynced before the API answers (several worker processes may append
at once). Readers re-read it when its size changes, checked with one `os.stat` at most every
`recheck_s` (0.5 s): the check sits on every recommendation request, and a syscall there lets
the serving process's other threads take the GIL (a wait of up to the switch interval on a
busy server). A process sees its own `add` at once; other processes within `recheck_s`.
The ids are kept as given: the list must match them in logs and datasets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

import orjson

from newsdesk.data.append_file import append_lines
from newsdesk.errors import DatasetError

FILE = "erasures.jsonl"


class ErasureList:
    """Tombstones in one JSON-lines file (created on the first `add`)."""

    def __init__(self, path: str | Path, *, recheck_s: float = 0.5) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._users: frozenset[str] = frozenset()
        self._size = -1
        self._next_check = 0.0  # monotonic

    @classmethod
    def in_dir(cls, directory: str | Path) -> ErasureList:
        return cls(Path(directory) / FILE)

    def add(self, user_ids: Iterable[str], *, now: float | None = None) -> int:
        """Append the ids not yet listed, durably; returns how many were new."""
        new = [u for u in dict.fromkeys(user_ids) if u not in self.users()]
        if not new:
            return 0
        at = time.time() if now is None else now
        data = b"".join(orjson.dumps({"user_id": u, "erased_at": at}) + b"\n" for u in new)
        append_lines(self.path, data)
        self._next_check = 0.0  # this process sees its own tombstones at once
        return len(new)

    def users(self) -> frozenset[str]:
        """Every listed id (re-read when the file changed size; see the module docstring)."""
        mono = time.monotonic()
        if mono < self._next_check:
            return self._users
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = -1
        with self._lock:
            self._next_check = mono + self.recheck_s
            if size < 0:
                self._users, self._size = frozenset(), -1
                return self._users
            if size != self._size:
                self._users = frozenset(_parse(self.path))
                self._size = size
            return self._users

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.users()

    def __len__(self) -> int:
        return len(self.users())


def _parse(path: Path) -> list[str]:
    out = []
    for lineno, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(str(orjson.loads(line)["user_id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            # a torn last line (crash mid-append) is the only expected damage: refuse loudly
            # rather than silently forget a tombstone
            raise DatasetError(f"{path}:{lineno}: field 'user_id': unreadable erasure entry "
                               f"({type(exc).__name__})") from exc
    return out


def erased_users(*sources: str | Path | None) -> frozenset[str]:
    """The union of the lists found at `sources` (files, or directories holding FILE)."""
    users: set[str] = set()
    for src in sources:
        if src is None:
            continue
        p = Path(src)
        users |= (ErasureList.in_dir(p) if p.is_dir() else ErasureList(p)).users()
    return frozenset(users)
