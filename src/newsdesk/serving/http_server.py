"""The options newsdesk gives uvicorn, in one place for the one-process and the worker paths.

Keep-alive: the server keeps an idle connection open for `keep_alive_s` (default 75 s), longer
than the clients' own idle expiry (httpx 5 s; nginx's upstream keep-alive and common cloud
load balancers 60 s), so that the *client* always closes an idle connection first. With both at
5 s (uvicorn's and httpx's defaults) the two timers race: the client's clock starts when it
has read the response, a little after the server's, and its pool checks a connection (expired?
closed by the server?) when it picks it, while a busy client (a load generator's one event
loop) writes the request some milliseconds later. A connection picked just before the server's
timer fires is closed under the request, and the client reads a reset (`ReadError`) or an EOF
(`RemoteProtocolError`) for a request the server never saw. `benchmarks/chaos.py` counted
these as failed requests after the fault had ended; tests/serving/test_keep_alive.py
reproduces the race and fails with the old 5 s.
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
