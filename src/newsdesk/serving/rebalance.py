"""Keep-alive connections that move between worker processes from time to time.

With several workers the kernel assigns a *connection* to a worker (SO_REUSEPORT hash), and a
keep-alive client sends every later request down the same connection. A client that holds
few connections (a proxy, a load generator, a front end with a small pool) can therefore pin
all its traffic on one worker — measured with serve_load: 12.8 s of CPU on one worker, 0.07 s
on the other — and a worker restarted after a crash would get no traffic from existing
clients at all. So each response carries `Connection: close` with probability
`1 / mean_requests`: the client reconnects (a TCP handshake on a local network, ~0.1 ms) and
the new connection is hashed again. Random rather than counted per connection: stateless and
the same on average.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]


class RebalanceConnections:
    """ASGI middleware: `Connection: close` on about one HTTP response in `mean_requests`."""

    def __init__(self, app: ASGIApp, *, mean_requests: int = 100,
                 rng: random.Random | None = None) -> None:
        if mean_requests < 1:
            raise ValueError(f"mean_requests must be >= 1, got {mean_requests}")
        self.app = app
        self.p = 1.0 / mean_requests
        self._random = (rng or random.Random()).random

    def __getattr__(self, name: str) -> Any:  # app.state etc. of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http" or self._random() >= self.p:
            await self.app(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, closing_send)
