"""The event log's disk full, and free again, without root: RLIMIT_FSIZE of the server.

A tiny tmpfs would be the most literal full disk, but mounting one needs privileges CI does
not have, and SQLite's write-ahead log reuses its file after a checkpoint, so a full tmpfs
stops the log only once the WAL must grow (seconds to minutes later, by traffic). Lowering
the running server's file-size limit with prlimit(2) is immediate and needs no privilege for
one's own child: every write past `limit_bytes` into any file fails with EFBIG (Python
ignores SIGXFSZ), which SQLite reports like a full disk (an I/O error on write). The hard
limit is left as it was, so `free()` can raise the soft limit back.
"""

from __future__ import annotations

import resource


class DiskFull:
    """Apply / lift the fault on one process id."""

    mode = "rlimit_fsize"

    def __init__(self, pid: int, *, limit_bytes: int = 4096) -> None:
        self.pid = pid
        self.limit_bytes = limit_bytes
        self._saved: tuple[int, int] | None = None

    def fill(self) -> None:
        soft, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        self._saved = (soft, hard)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (self.limit_bytes, hard))

    def free(self) -> None:
        if self._saved is not None:
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self._saved)
            self._saved = None
