"""A real `newsdesk serve` process on a small simulated world (tests and benchmarks/fuzz_api.py).

`small_world(root)` simulates a one-day world and trains a bundle with the hashing embedder
(no model download), both as subprocesses of the `newsdesk` code under test, so the calling
process never loads LightGBM. `LiveServer` starts `python -m newsdesk.cli.main serve` on a free
127.0.0.1 port, waits until /readyz answers 200, and stops it with SIGTERM; its stderr (the
JSON log) and stdout (uvicorn's access log, when asked for) are kept in one file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

NEWSDESK = [sys.executable, "-m", "newsdesk.cli.main"]
ADMIN_KEY = "live-admin-key-0123456789"
_TRAIN = """
import sys
from pathlib import Path
from threadpoolctl import threadpool_limits
from newsdesk.pipelines.train import RankerConfig, TrainConfig, train
config = TrainConfig(embedder="hashing", reference_requests=50,
                     ranker=RankerConfig(num_boost_round=10, min_data_in_leaf=5))
with threadpool_limits(1, "blas"):
    print(train(Path(sys.argv[1]), Path(sys.argv[2]), config))
"""


@dataclass(frozen=True)
class World:
    dataset: Path
    bundles: Path
    version: str
    clock_start: str  # ISO: a minute after the world's last impression
    users: list[str]
    articles: list[str]


def small_world(root: Path, *, users: int = 200, impressions: int = 2000) -> World:
    """Simulate and train (about 30 s on a shared 2-core machine)."""
    from newsdesk.data.dataset import Dataset

    root.mkdir(parents=True, exist_ok=True)
    dataset, bundles = root / "dataset", root / "bundles"
    subprocess.run([*NEWSDESK, "simulate", "--seed", "1", "--users", str(users), "--days", "1",
                    "--impressions-per-day", str(impressions), "--articles-per-day", "150",
                    "--out", str(dataset)], check=True, capture_output=True, timeout=300)
    out = subprocess.run([sys.executable, "-c", _TRAIN, str(dataset), str(bundles)],
                         check=True, capture_output=True, text=True, timeout=600)
    version = out.stdout.strip().splitlines()[-1]
    ds = Dataset(dataset)
    end = ds.read("impressions")["timestamp"].max()
    return World(dataset, bundles, version, (end + timedelta(minutes=1)).isoformat(),
                 ds.read("interactions")["user_id"].unique().sort().to_list()[:20],
                 ds.read("articles")["article_id"].to_list()[:20])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """`newsdesk serve` as a subprocess (see the module docstring)."""

    def __init__(self, world: World, state_dir: Path, *, log_level: str = "info",
                 env: dict[str, str] | None = None, extra_args: list[str] | None = None,
                 ready_timeout_s: float = 120.0) -> None:
        self.world = world
        self.state_dir = state_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = state_dir.parent / f"server-{self.port}.log"
        self.log_level = log_level
        self.env = env or {}
        self.extra_args = extra_args or []
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def __enter__(self) -> LiveServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        env = {**os.environ, "NEWSDESK_ADMIN_API_KEY": ADMIN_KEY, "HF_HUB_OFFLINE": "1",
               **self.env}
        w = self.world
        self.proc = subprocess.Popen(
            [*NEWSDESK, "serve", "--dataset", str(w.dataset), "--bundles", str(w.bundles),
             "--port", str(self.port), "--state-dir", str(self.state_dir), "--workers", "1",
             "--clock-start", w.clock_start, "--log-level", self.log_level, *self.extra_args],
            env=env, stdout=self._log, stderr=subprocess.STDOUT)  # uvicorn's access log: stdout
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("newsdesk serve exited: "
                                       + self.log_path.read_text()[-2000:])
                try:
                    if client.get("/readyz").json().get("status") == "ready":
                        return
                except (httpx.TransportError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready in {self.ready_timeout_s} s")
                time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
