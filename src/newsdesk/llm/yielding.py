"""Background LLM work that steps aside for the request path, token by token.

    with yielding_to(signal.busy):      # the enrichment worker, around one article
        enricher.enrich(article)        # -> LocalProvider's token loop calls pause_while_busy()

A local model computes an article for seconds; a gate before each article (llm/enrich_queue.py)
is not enough when the load arrives in the middle of one. The in-process provider asks
`pause_while_busy()` before every prompt block and every generated token: while the caller's
signal says the request path is busy, it sleeps (and moves its own deadline by the pause, so a
paused answer does not time out). Only calls made inside `yielding_to` pause: an interactive
call (a re-rank with its hard budget, an admin asking for headlines) never waits. Providers
whose work is off the box (the OpenAI-compatible client) and the child-process provider do not
pause; the worker's gate between articles still applies to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_BUSY: ContextVar[Callable[[], bool] | None] = ContextVar("newsdesk_llm_yield_to", default=None)
POLL_S = 0.2


@contextmanager
def yielding_to(busy: Callable[[], bool] | None) -> Iterator[None]:
    """LLM calls made inside pause while `busy()` is True (None: they never pause)."""
    token = _BUSY.set(busy)
    try:
        yield
    finally:
        _BUSY.reset(token)


def pause_while_busy() -> float:
    """Sleeps while the current background job's signal says busy; the seconds paused."""
    busy = _BUSY.get()
    if busy is None or not busy():
        return 0.0
    start = time.monotonic()
    while busy():
        time.sleep(POLL_S)
    return time.monotonic() - start
