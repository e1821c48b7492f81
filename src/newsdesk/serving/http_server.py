"""The options newsdesk gives uvicorn, in one place for the one-process and the worker paths.

Keep-alive: the server keeps an idle connection open for `keep_alive_s` (default 75 s), longer
than the clients' own idle expiry (httpx 5 s, aiohttp 15 s, nginx upstream and cloud load
balancers 60 s), so that the *client* always closes an idle connection first. With both at
5 s (uvicorn's and httpx's defaults) the two timers race: the server's keep-alive timer fires
on a connection the client has just picked from its pool, and when the server's event loop was
busy (a model call, a GC pause, a starved machine) the request is already in the socket's
buffer as the server closes it: the kernel answers with a reset and the client sees
`ReadError` on a request the server never read. `benchmarks/chaos.py` counted such resets as
failed requests after the fault had ended (tests/serving/test_keep_alive.py reproduces it).
An idle connection costs the server one file descriptor and a small protocol object.
"""

from __future__ import annotations

from typing import Any

from newsdesk.serving.settings import ServeSettings


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run` / `uvicorn.Config` common to every serving path
    (the app, workers, access log and lifespan are the caller's)."""
    return {"host": settings.host, "port": settings.port, "loop": "uvloop",
            "http": "httptools", "log_level": settings.log_level,
            "timeout_keep_alive": settings.keep_alive_s, "timeout_graceful_shutdown": 10}
