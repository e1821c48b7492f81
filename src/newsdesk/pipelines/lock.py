"""One pipeline at a time: an OS file lock that the kernel releases when its holder dies.

`fcntl.flock` on `STATE_DIR/pipeline.lock`: held for a whole cycle (export, train, evaluate,
promote), so two runs never train or promote at once. A lock file left behind by a crashed run
is no obstacle: the lock belongs to the open file description, not to the file, and the kernel
drops it with the process (SIGKILL included), so there is no stale-lock cleanup to get wrong.
The holder writes its pid, host and start time into the file so the loser can say who holds it.

flock works between processes of one host (and on most local filesystems); two hosts sharing a
network filesystem need a lock service instead, which is out of scope here (see docs).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from newsdesk.errors import NewsdeskError

LOCK_FILE = "pipeline.lock"


class PipelineBusy(NewsdeskError):
    """Another pipeline run holds the lock; the message names its pid and host."""


class PipelineLock:
    """`with PipelineLock(state_dir):` holds the lock or raises PipelineBusy at once."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def holder(self) -> dict[str, Any] | None:
        """What the current (or last) holder wrote into the file."""
        try:
            text = self.path.read_text()
            return json.loads(text) if text.strip() else None
        except (OSError, json.JSONDecodeError):
            return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            h = self.holder() or {}
            raise PipelineBusy(
                f"another pipeline run holds {self.path} (pid {h.get('pid', '?')} on host "
                f"{h.get('host', '?')}, since {h.get('since', '?')}); not starting") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.now(UTC).isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PipelineLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
