"""No acknowledged event is lost when the writing process is SIGKILLed mid-stream.

A real child process appends batches in a loop and prints the last event id of each batch once
`append` has returned (the acknowledgement); the parent kills it with SIGKILL after a few hundred
acks, reopens the database and checks every acknowledged batch is there, whole.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from newsdesk.data.eventlog.sqlite import SQLiteEventLog

BATCH = 25
ACKS_BEFORE_KILL = 300

CHILD = textwrap.dedent(
    """
    import sys, threading
    from datetime import UTC, datetime
    from newsdesk.data.eventlog.sqlite import SQLiteEventLog

    log = SQLiteEventLog(sys.argv[1])
    batch_size = int(sys.argv[2])
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    out_lock = threading.Lock()

    def writer(worker):
        n = 0
        while True:  # runs until SIGKILL
            ids = [f"w{worker}-b{n}-{i}" for i in range(batch_size)]
            log.append([{"event_id": e, "type": "click", "user_id": "u", "article_id": "a",
                         "timestamp": t0} for e in ids])
            with out_lock:
                sys.stdout.write(ids[-1] + "\\n")
                sys.stdout.flush()
            n += 1

    # two writer threads, so group commit (several batches in one transaction) is exercised
    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_no_acknowledged_event_lost_on_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(BATCH)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    acked: list[str] = []
    watchdog = threading.Timer(60, child.kill)  # never hang the suite if the child stalls
    watchdog.start()
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acked.append(line.strip())
            if len(acked) >= ACKS_BEFORE_KILL:
                os.kill(child.pid, signal.SIGKILL)  # mid-stream: the writer is busy
                break
    finally:
        watchdog.cancel()
        child.kill()
        child.wait(timeout=10)
        stderr = child.stderr.read() if child.stderr else ""
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert len(acked) >= ACKS_BEFORE_KILL, f"child acked only {len(acked)}: {stderr}"
    assert child.returncode == -signal.SIGKILL

    # The database must be consistent...
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    # ...hold every event of every acknowledged batch...
    log = SQLiteEventLog(db)
    try:
        stored = {r.event_id for _, r in log.read()}  # type: ignore[union-attr]
        for last_id in acked:
            prefix = last_id.rsplit("-", 1)[0]
            missing = [f"{prefix}-{i}" for i in range(BATCH) if f"{prefix}-{i}" not in stored]
            assert not missing, f"acknowledged events lost: {missing[:3]}"
        # ...and no partial batch (all-or-nothing), no duplicate rows.
        batches: dict[str, int] = {}
        for event_id in stored:
            prefix = event_id.rsplit("-", 1)[0]
            batches[prefix] = batches.get(prefix, 0) + 1
        assert set(batches.values()) == {BATCH}
        assert log.count() == len(stored) == BATCH * len(batches)
        assert len(batches) >= len(acked)
        # the reopened log takes writes again
        assert log.append([{"event_id": "after", "type": "click", "user_id": "u",
                            "article_id": "a", "timestamp": "2024-01-01T00:00:00Z"}]).accepted
    finally:
        log.close()
