"""Incremental export: a real process SIGKILLed mid-export and re-run loses and doubles no
event; a chunk cut short (parts without a commit marker) is cleaned and redone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.eventlog import open_event_log
from newsdesk.pipelines.export import MARKER_DIR, committed_chunks, export_new_events

SRC = Path(__file__).resolve().parents[2] / "src"
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _records(n: int) -> list[dict]:
    out: list[dict] = []
    for i in range(n):
        ts = T0 + timedelta(seconds=i)
        if i % 3 == 2:
            out.append({"kind": "interaction", "event_id": f"e{i}", "user_id": f"u{i % 97}",
                        "article_id": f"a{i % 50}", "type": "click", "timestamp": ts,
                        "request_id": f"r{i - 1}"})
        else:
            out.append({"kind": "impression", "request_id": f"r{i}", "user_id": f"u{i % 97}",
                        "timestamp": ts, "article_ids": [f"a{(i + k) % 50}" for k in range(5)]})
    return out


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, str, int]:
    ds = tmp_path / "dataset"
    with DatasetWriter(ds, source="test") as w:  # one event already there: never doubled
        w.table("impressions").write_row({"request_id": "r0", "user_id": "u0", "timestamp": T0,
                                          "article_ids": ["a0"], "surface": "front_page"})
    url = f"sqlite:///{tmp_path / 'events.db'}"
    recs = _records(30_000)
    with open_event_log(url) as log:
        for lo in range(0, len(recs), 5000):
            log.append(recs[lo:lo + 5000])
    return ds, url, len(recs)


def _keys(ds: Path) -> Counter[str]:
    d = Dataset(ds)
    keys: Counter[str] = Counter()
    for table, col in (("impressions", "request_id"), ("interactions", "event_id")):
        for f in d.files(table):
            keys.update(pq.read_table(f, columns=[col]).column(0).to_pylist())
    return keys


def _assert_exact(ds: Path, n: int) -> None:
    keys = _keys(ds)
    assert max(keys.values()) == 1  # nothing doubled
    assert len(keys) == n  # nothing lost (r0 was in the dataset and is in the log)
    d = Dataset(ds)
    assert d.manifest["tables"]["impressions"]["rows"] == d.count("impressions")


def test_sigkill_mid_export_then_rerun_gives_every_event_once(setup: tuple[Path, str, int]
                                                               ) -> None:
    ds, url, n = setup
    code = ("import sys; from newsdesk.data.eventlog import open_event_log; "
            "from newsdesk.pipelines.export import export_new_events; "
            f"export_new_events(open_event_log({url!r}), {str(ds)!r}, chunk_events=300)")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    markers = ds / MARKER_DIR
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if markers.is_dir() and len(list(markers.glob("*.json"))) >= 3:
                break
            assert proc.poll() is None, "the export finished before it could be killed"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    done = committed_chunks(ds)
    assert 3 <= len(done) < n // 300  # killed mid-export: some chunks committed, not all
    with open_event_log(url) as log:
        stats = export_new_events(log, ds, chunk_events=300)
        assert stats.since_seq == done[-1][1]  # resumed after the last committed chunk
        _assert_exact(ds, n)
        again = export_new_events(log, ds, chunk_events=300)  # and re-running changes nothing
    assert again.chunks == 0 and sum(again.added.values()) == 0
    _assert_exact(ds, n)


def test_parts_of_an_uncommitted_chunk_are_removed_and_redone(setup: tuple[Path, str, int]
                                                              ) -> None:
    ds, url, n = setup
    with open_event_log(url) as log:
        export_new_events(log, ds, chunk_events=4000)
        # simulate a crash inside the last chunk: its marker is gone, its parts remain, and a
        # half-written temporary file lies beside them
        lo, hi = committed_chunks(ds)[-1]
        (ds / MARKER_DIR / f"{lo:012d}-{hi:012d}.json").unlink()
        part = ds / "impressions" / f"eventlog-{lo:012d}-{hi:012d}.parquet"
        assert part.is_file()
        shutil.copy(part, ds / "impressions" / f".eventlog-{lo:012d}-{hi:012d}.parquet.x.tmp")
        shutil.copy(part, ds / "impressions" / f"eventlog-{lo:012d}-{hi + 7:012d}.parquet")
        stats = export_new_events(log, ds, chunk_events=4000)
    assert stats.cleaned_files == 4  # the two orphan parts of that chunk, a stray copy, a tmp
    assert stats.since_seq < lo and stats.chunks == 1
    assert not list((ds / "impressions").glob("*.tmp"))
    _assert_exact(ds, n)
