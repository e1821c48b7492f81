"""A redis-server child process that a fault test may kill, pause, or bring back empty.

No persistence (`--save ""`, no AOF): a restart is a Redis that comes back EMPTY, the case the
online state's rebuild (`serving/state_keeper.py`) is for. The port stays the same across
restarts, so clients reconnect to the new server.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from newsdesk.chaos.server import free_port


def wait_until_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    """Until the redis-server `proc` answers PING on 127.0.0.1:port; RuntimeError when it
    exits or stays silent for `timeout_s` (the caller kills it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not answer on port {port} in {timeout_s}s")


class RedisServer:
    """redis-server on 127.0.0.1 (see the module docstring). Raises RuntimeError without the
    binary (install: apt-get install redis-server)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(self.proc, self.port, timeout_s)
        except RuntimeError:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL and reap (a paused server is killed too)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart_empty(self) -> None:
        """Kill, then start again on the same port with no data (no persistence)."""
        self.kill()
        self.start()

    def flushall(self) -> None:
        """Empty the running server (FLUSHALL), as a restart without persistence would."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(16)
