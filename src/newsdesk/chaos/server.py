"""`newsdesk serve` as a child process that a test or benchmark may kill, pause or restart.

Every wait is bounded. The command runs with the caller's interpreter and environment (so a
worktree's `PYTHONPATH=src` reaches the server); stderr goes to a log file kept for post
mortems. One process (`--workers 1`) by default: a SIGKILL then hits the process that holds
the event log and the online store, which is the case crash tests care about.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NEWSDESK = [sys.executable, "-m", "newsdesk.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _copy(src: Any, dest: Any) -> None:
    with src, dest:  # both closed at the child's exit (EOF)
        for line in iter(src.readline, b""):
            dest.write(line)
            dest.flush()


def proc_sample(pid: int) -> dict[str, float]:
    """RSS (MiB), open file descriptors and threads of one process from /proc (zeros once
    it has exited)."""
    out = {"rss_mib": 0.0, "fds": 0.0, "threads": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mib"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                out["threads"] = float(line.split()[1])
        out["fds"] = float(len(os.listdir(f"/proc/{pid}/fd")))
    except OSError:
        pass
    return out


class ServeProcess:
    """One `newsdesk serve` child on 127.0.0.1 (see the module docstring).

    Args:
        args: the arguments after `newsdesk serve` except --port (given here).
        log_path: stderr of every start is appended here.
        env: extra environment variables (over the caller's).
    """

    def __init__(self, args: Sequence[str], *, log_path: Path, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1",
                    **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"server already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts + 1} ---\n".encode())
        log.flush()
        # stderr through a pipe that this process copies to the log file, as a supervisor
        # or journald would: a fault on the server's own files (DiskFull) must not break
        # its logging
        self.proc = subprocess.Popen(
            [*NEWSDESK, "serve", "--port", str(self.port), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        threading.Thread(target=_copy, args=(self.proc.stderr, log), daemon=True,
                         name="serve-stderr").start()
        self.starts += 1

    def wait_ready(self, timeout_s: float = 60.0, *, need_model: bool = True) -> float:
        """Wait until /readyz answers with the app's services up; returns seconds waited.

        need_model=False accepts a 503 that only lacks a model (events are still taken)."""
        import httpx

        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"server exited ({self.proc and self.proc.returncode}); "
                                   f"log: {self.log_tail()}")
            try:
                r = httpx.get(self.url + "/readyz", timeout=2.0)
                body = r.json()
                checks = body.get("checks", {})
                if r.status_code == 200 or (not need_model and checks.get("event_log")
                                            and checks.get("online_store")):
                    return time.monotonic() - started
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server at {self.url} not ready in {timeout_s} s; "
                           f"log: {self.log_tail()}")

    def readyz(self) -> dict[str, Any]:
        """The /readyz body (status code under "http_status"); {} when it does not answer."""
        import httpx

        try:
            r = httpx.get(self.url + "/readyz", timeout=2.0)
            return {**r.json(), "http_status": r.status_code}
        except (httpx.HTTPError, ValueError):
            return {}

    def wait_online_state(self, timeout_s: float = 60.0) -> float:
        """Wait until the online state is whole (no rebuild running); returns seconds."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            body = self.readyz()
            if body.get("online_state", {}).get("state") == "ok" and \
                    body.get("bootstrap", {}).get("state") not in ("pending", "loading"):
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"online state not rebuilt in {timeout_s} s: {self.readyz()}")

    def kill(self) -> None:
        """SIGKILL (no shutdown hooks run) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful drain), SIGKILL after timeout_s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def sample(self) -> dict[str, float]:
        return proc_sample(self.pid)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
