"""Shared fixtures: a real redis-server for the tests that need one.

`redis_server` (session) starts one `redis-server` on 127.0.0.1 and a free port, without
persistence, and yields its URL; tests sharing it should use their own key prefix or flush the
database. `redis_process` (function) starts a private server a test may kill (failure tests).
Both skip with a clear reason when the binary is missing (install: apt-get install redis-server).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_BINARY = "redis-server"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A redis-server child process on 127.0.0.1; `url` to connect, `kill()` to crash it."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which(REDIS_BINARY)
        if binary is None:
            reason = ("redis-server binary not found; install it with "
                      "'apt-get install redis-server' to run the redis tests")
            if os.environ.get("CI"):  # CI installs it (.ci/run): a skip there would hide a gap
                pytest.fail(reason)
            pytest.skip(reason)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        from newsdesk.chaos.redis import wait_until_ready

        try:
            wait_until_ready(self.process, self.port, timeout_s)
        except RuntimeError:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the server and reap it (idempotent)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server shared by the whole session (killed at the end)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis-session"))
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server for one test, which the test may kill."""
    server = RedisProcess(tmp_path / "redis")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(autouse=True)
def _unfrozen_heap() -> Iterator[None]:
    """A served app freezes the heap once its state is loaded (serving/heap.py); in a test
    process that would keep every later test's garbage cycles: give them back after each."""
    import gc

    yield
    if gc.get_freeze_count():
        gc.unfreeze()
