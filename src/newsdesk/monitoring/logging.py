"""Structured JSON logs (structlog) that carry the request id.

`configure_logging()` sets structlog up once per process to print one JSON object per line:
timestamp (ISO, UTC), level, event, and every key bound in the context variables — the serving
middleware binds `request_id` for the duration of each request, so every log line written while
handling it (in the pipeline, the event path, the admin routes) carries the id the client saw.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

_configured = False
_redactor: Any = None  # serving.privacy.Redactor once a server configured it


def set_redactor(redactor: Any) -> None:
    """Install the processor that pseudonymises identities and drops content in every log
    line of the process (serving/privacy.py); None removes it."""
    global _redactor
    _redactor = redactor


def _redact(logger: Any, method: str, event: Any) -> Any:
    return event if _redactor is None else _redactor(logger, method, event)


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(level: str = "info", *, force: bool = False) -> None:
    """Configure structlog for JSON lines on stderr at `level` (idempotent unless `force`)."""
    global _configured
    if _configured and not force:
        return
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _redact,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; `name` is added as the `component` key."""
    # initial values on the lazy proxy (not .bind()): binding now would freeze the logger
    # with whatever configuration exists at import time
    return structlog.get_logger(component=name) if name else structlog.get_logger()


def bind_request_id(request_id: str) -> None:
    """Bind the request id for every log line of the current request (a context variable)."""
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request_context() -> None:
    structlog.contextvars.clear_contextvars()
