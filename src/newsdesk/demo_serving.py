"""The serving part of `make demo`: start `newsdesk serve`, make real requests, stop it.

It shows the real-time loop: a click on the top recommendation is posted as an event and the
next request for the same user reflects it (the read article disappears, the profile moves).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from newsdesk.data.stats import dataset_stats

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll GET /readyz until the service is ready *and* its online store has finished loading
    the dataset (status "ready", not "loading"); fail early if the server process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"newsdesk serve exited with code {proc.returncode}")
        try:
            r = client.get("/readyz")
            if r.status_code == 200 and r.json().get("status") == "ready":
                boot = r.json().get("bootstrap") or {}
                if boot.get("state") not in (None, "off"):
                    console.print(f"online store loaded from the dataset: {boot}")
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"newsdesk serve was not ready within {timeout_s:.0f} s")


@contextmanager
def running_server(dataset_dir: Path, bundles_dir: Path, state_dir: Path, log_path: Path, *,
                   env: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """`newsdesk serve` as a subprocess, as of the dataset's last event; yields a client once
    /readyz answers 200, and stops the server with SIGTERM (its documented shutdown) after."""
    port = free_port()
    last_event = dataset_stats(dataset_dir)["last_event"]
    cmd = [sys.executable, "-m", "newsdesk.cli.main", "serve", "--dataset", str(dataset_dir),
           "--bundles", str(bundles_dir), "--port", str(port), "--state-dir", str(state_dir),
           "--clock-start", last_event.isoformat(), "--log-level", "warning"]
    shown_env = "".join(f"{k}=... " for k in (env or {}))
    console.print("$ " + shown_env + " ".join(cmd[2:]).replace("newsdesk.cli.main", "newsdesk"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            wait_ready(client, proc, timeout_s=180)
            console.print(f"ready on {client.base_url} (server log: {log_path})")
            yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _show(title: str, body: dict[str, Any]) -> list[str]:
    console.print(f"[bold]{title}[/bold] (model {body['model_version']}, "
                  f"degraded={body['degraded']})")
    for item in body["items"]:
        console.print(f"  {item['rank']:>2}. {item['article_id']:<8} {item['score']:+.3f}  "
                      f"{item['reason']}")
    return [item["article_id"] for item in body["items"]]


def run_serving_demo(dataset_dir: Path, bundles_dir: Path, *, user_id: str = "u1") -> None:
    last_event = dataset_stats(dataset_dir)["last_event"]
    with running_server(dataset_dir, bundles_dir, bundles_dir.parent / "serve-state",
                        bundles_dir.parent / "serve.log") as client:
        ask = {"user_id": user_id, "surface": "front_page", "k": 5}
        first = client.post("/v1/recommendations", json=ask).raise_for_status().json()
        before = _show(f"front page for {user_id}", first)

        clicked = before[0]
        now = datetime.now(UTC).isoformat()
        ack = client.post("/v1/events", json={"events": [{
            "type": "click", "event_id": f"demo-{uuid.uuid4().hex[:8]}", "user_id": user_id,
            "article_id": clicked, "request_id": first["request_id"], "timestamp": now,
        }]}).raise_for_status().json()
        console.print(f"posted a click on {clicked}: accepted={ack['accepted']}, "
                      f"applied to online state={ack['applied']}")

        second = client.post("/v1/recommendations", json=ask).raise_for_status().json()
        after = _show(f"front page for {user_id} after the click", second)
        changed = before != after
        console.print(f"the click changed the next recommendation: [bold]{changed}[/bold]"
                      f" ({clicked} {'gone' if clicked not in after else 'still listed'})")

        related = client.get(f"/v1/articles/{clicked}/related", params={"k": 3})
        if related.status_code == 200:
            _show(f"related to {clicked}", related.json())
        metrics = client.get("/metrics").text
        console.print(f"/metrics exposes {metrics.count(chr(10))} lines of Prometheus text")
    console.print(
        "\nTo query it yourself:\n"
        f"  newsdesk serve --dataset {dataset_dir} --bundles {bundles_dir} --port 8000 "
        f"--clock-start {last_event.isoformat()}\n"
        "  curl -s localhost:8000/v1/recommendations -H 'content-type: application/json' "
        "-d '{\"user_id\": \"u1\", \"k\": 5}'\n"
        "  curl -s localhost:8000/v1/articles/a1/related\n"
        "  open http://localhost:8000/docs for the OpenAPI documentation"
    )
