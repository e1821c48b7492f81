"""The server outlives its clients' keep-alive: a pooled connection picked just before the
client's own expiry is never closed under it (serving/http_server.py).

A real uvicorn with newsdesk's options (uvloop, httptools, `keep_alive_s`) serves a tiny ASGI
app in a thread; an httpx client takes a pooled connection shortly before its own expiry, and
its event loop is busy a moment before the request goes out, as a load generator's is. The
control shows the race the setting prevents: with a server keep-alive shorter than the
client's pool expiry, the server closes the connection in that moment and the request fails.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from newsdesk.serving.http_server import uvicorn_options
from newsdesk.serving.settings import ServeSettings

HTTPX_DEFAULT_EXPIRY_S = 5.0  # httpx.Limits' keepalive_expiry default, spelled out


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(tmp_path: Path, **overrides: Any) -> Iterator[str]:
    settings = ServeSettings(bundles_dir=tmp_path, port=_free_port(), log_level="warning",
                             **overrides)
    server = uvicorn.Server(uvicorn.Config(_app, lifespan="off", **uvicorn_options(settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(15)


async def _reuse_with_busy_client(url: str, *, expiry_s: float, idle_s: float,
                                  busy_s: float) -> int:
    """One request on a pooled connection, `idle_s` after its last response (within the
    client's `expiry_s`): the pool picks the connection, then the client's own event loop is
    busy for `busy_s` (a load generator's other requests) before the request goes out.
    Returns the status; raises what httpx raises."""
    async with httpx.AsyncClient(base_url=url, timeout=10,
                                 limits=httpx.Limits(keepalive_expiry=expiry_s)) as client:
        assert (await client.get("/ok")).status_code == 200
        await asyncio.sleep(idle_s)
        # the request task runs first: it takes the pooled connection (still open: the pool
        # checks its own expiry and whether the server has closed it), then yields to the loop
        request = asyncio.create_task(client.get("/ok"))
        await asyncio.sleep(0)
        time.sleep(busy_s)  # the loop is busy: the request waits to be written
        return (await request).status_code


def test_connection_reused_at_the_clients_expiry_is_answered(tmp_path: Path) -> None:
    """Default settings; a client with httpx's default pool takes a connection 0.3 s before it
    would expire it, and sends on it 0.6 s later (past its own expiry): answered."""
    assert ServeSettings(bundles_dir=tmp_path).keep_alive_s > HTTPX_DEFAULT_EXPIRY_S
    with _server(tmp_path) as url:
        status = asyncio.run(_reuse_with_busy_client(
            url, expiry_s=HTTPX_DEFAULT_EXPIRY_S, idle_s=HTTPX_DEFAULT_EXPIRY_S - 0.3,
            busy_s=0.6))
    assert status == 200


def test_control_server_keep_alive_shorter_than_the_client_fails_the_request(
        tmp_path: Path) -> None:
    """The race itself (uvicorn's and httpx's defaults are both 5 s, and the client's clock
    starts after the server's; 1 s against 5 s here to be quick): the pool takes a connection
    the server closes a moment later, and the request goes out on a closed connection."""
    with (_server(tmp_path, keep_alive_s=1.0) as url,
          pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)) as failure):
        asyncio.run(_reuse_with_busy_client(url, expiry_s=HTTPX_DEFAULT_EXPIRY_S,
                                            idle_s=0.7, busy_s=0.6))
    assert "disconnected" in str(failure.value) or "reset" in str(failure.value).lower()
