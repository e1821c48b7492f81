"""A private redis-server for the processes of one `newsdesk serve --workers N`.

Several serving processes need one online store. Without `--redis-url` the parent process
starts its own redis-server as a child: a unix socket in the state dir (no TCP port, nothing
reachable from outside the machine), append-only-file persistence in `state_dir/redis/` (fsync
every second; the event log remains the durable record of every event), and a parent-death
signal so that a killed parent never leaves it behind. The workers use the ordinary
`RedisOnlineStore` on `unix://...`.

    with ManagedRedis(state_dir / "redis") as server:
        url = server.url        # unix:///.../redis/redis.sock

Why this and not per-process memory stores kept in step through the event log: measured in the
branch notes (README section "Several serving processes"): a shared server is one copy of the
state whatever N, read-your-writes across processes by construction, and no leader election.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from newsdesk.errors import ConfigError, MissingDependency
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.serving.managed_redis")
BINARY = "redis-server"
INSTALL_HINT = ("install it with 'apt-get install redis-server' (or brew install redis), "
                "pass --redis-url, or run with --workers 1")
_MAX_UNIX_PATH = 100  # sun_path holds 108 bytes


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG); a
    no-op elsewhere. Children of `newsdesk serve` must not outlive a SIGKILLed parent."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)


def _ping_unix(path: Path, timeout_s: float = 0.2) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class ManagedRedis:
    """A redis-server child process persisting into `directory` (see the module docstring)."""

    def __init__(self, directory: Path, *, binary: str | None = None,
                 start_timeout_s: float = 20.0) -> None:
        self.directory = Path(directory).resolve()
        self.binary = binary or shutil.which(BINARY)
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        sock = self.directory / "redis.sock"
        if len(str(sock)) > _MAX_UNIX_PATH:  # a deep state dir: the socket goes to /tmp
            self._tmp = tempfile.mkdtemp(prefix="newsdesk-redis-")
            sock = Path(self._tmp) / "redis.sock"
        self.socket_path = sock

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> ManagedRedis:
        if self.binary is None:
            raise MissingDependency(f"'{BINARY}' was not found on PATH; several serving "
                                    f"processes share their online state through it: "
                                    f"{INSTALL_HINT}")
        self.directory.mkdir(parents=True, exist_ok=True)
        if _ping_unix(self.socket_path):
            raise ConfigError(f"setting 'state_dir': a redis-server already answers on "
                              f"{self.socket_path}: another `newsdesk serve` uses this state "
                              f"dir; stop it or choose another --state-dir")
        self.socket_path.unlink(missing_ok=True)
        log_path = self.directory / "redis.log"
        self.process = subprocess.Popen(
            [self.binary, "--port", "0", "--unixsocket", str(self.socket_path),
             "--unixsocketperm", "700", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--protected-mode", "yes", "--daemonize", "no", "--logfile", str(log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent, start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:  # loading a large AOF takes a while
            if self.process.poll() is not None:
                tail = log_path.read_text()[-1000:] if log_path.exists() else ""
                raise ConfigError(f"the private redis-server exited with "
                                  f"{self.process.returncode} (log {log_path}): {tail}")
            if _ping_unix(self.socket_path):
                log.info("managed_redis_started", pid=self.process.pid, url=self.url)
                return self
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"the private redis-server did not answer on {self.socket_path} in "
                          f"{self.start_timeout_s} s (log {log_path})")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (redis flushes its append-only file and exits), SIGKILL after timeout_s."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.socket_path.unlink(missing_ok=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> ManagedRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
