"""A lean HTTP/1.1 keep-alive client for the load generators (asyncio + httptools).

Why not httpx here: on the 2-core machine the load generator shares the cores with the server
it measures, and httpx costs ~1.7 ms of CPU per request (measured against the trivial endpoint
at 200 req/s: the generator used three times the server's CPU), a third of a core at 200 req/s
taken from the server. This client writes a prepared request and parses the answer with
httptools (uvicorn's parser): a few tens of microseconds. It does only what the benchmarks
need: POST/GET of a small JSON body over a pool of keep-alive connections to one host,
`Connection: close` honoured (the server's connection rebalancing), status code and body back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httptools


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body = bytearray()
        self.reusable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is duck-typed

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionError("connection lost"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"connection" and value.strip().lower() == b"close":
            self.reusable = False

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), bytes(self.body)))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """`await client.post(path, body)` -> (status, body bytes); connections are pooled."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._host_header = f"{self.host}:{self.port}".encode()

    def _request(self, method: bytes, path: str, body: bytes) -> bytes:
        head = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: " + self._host_header
                + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n")
        return head + body

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
            self._drop(conn)
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self.host, self.port)
        self._all.add(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        conn = await self._connection()
        try:
            status, content = await asyncio.wait_for(
                conn.send(self._request(method.encode(), path, body)), self.timeout_s)
        except BaseException:
            self._drop(conn)
            raise
        if conn.reusable:
            self._idle.append(conn)
        else:
            self._drop(conn)
        return status, content

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return await self.request("POST", path, body)

    def close(self) -> None:
        for conn in list(self._all):
            self._drop(conn)


@asynccontextmanager
async def lean_client(base_url: str, *, timeout_s: float = 10.0) -> AsyncIterator[LeanClient]:
    client = LeanClient(base_url, timeout_s=timeout_s)
    try:
        yield client
    finally:
        client.close()
