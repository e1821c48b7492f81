"""Two pipeline runs never overlap: the flock is refused while a live process holds it (the
error names its pid and host) and is free again the moment that process is SIGKILLed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from newsdesk.pipelines.lock import PipelineBusy, PipelineLock
from newsdesk.pipelines.loop import PipelineRunner

SRC = Path(__file__).resolve().parents[2] / "src"


def _holder(state: Path) -> subprocess.Popen[str]:
    code = ("import time; from newsdesk.pipelines.lock import PipelineLock; "
            f"PipelineLock({str(state)!r}).acquire(); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_exclusive_and_survives_a_crash_of_its_holder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _holder(state)
    try:
        with pytest.raises(PipelineBusy, match=f"pid {proc.pid} on host {socket.gethostname()}"):
            PipelineLock(state).acquire()
        # a whole cycle refuses to start, and says so in the audit log
        runner = PipelineRunner(tmp_path / "nowhere", tmp_path / "bundles", state_dir=state)
        with pytest.raises(PipelineBusy):
            runner.run_once()
        (rec,) = runner.audit.records()
        assert rec["decision"] == "skipped" and str(proc.pid) in rec["error"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    # the kernel released the dead holder's lock: no stale-lock cleanup needed
    with PipelineLock(state) as lock:
        assert lock.holder()["pid"] == os.getpid()
        with pytest.raises(PipelineBusy):  # exclusive within one process too
            PipelineLock(state).acquire()
    again = PipelineLock(state)
    again.acquire()  # released on exit
    again.release()
