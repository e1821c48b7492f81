"""The outermost ASGI layer of the API: request id, size limit, metrics, logs, last-resort 500.

A pure ASGI middleware (not `BaseHTTPMiddleware`, which costs a task and a memory stream per
request) that

* gives every request an id (the client's `X-Request-ID` when it is sane, else a fresh one),
  binds it for the structured logs and returns it in the `X-Request-ID` header;
* refuses bodies larger than `max_body_bytes` with 413, from Content-Length up front or while
  a chunked body streams in;
* records request count, 5xx count and latency per endpoint template (never per raw path);
* turns any unhandled exception into a generic JSON 500 carrying the request id: no stack trace
  leaves the process, the log line has it.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson

from newsdesk.monitoring.logging import bind_request_id, clear_request_context, get_logger
from newsdesk.monitoring.metrics import ServingMetrics

log = get_logger("newsdesk.serving.http")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLarge(Exception):
    pass


def error_json(status: int, error: str, message: str, request_id: str,
               fields: list[dict[str, Any]] | None = None) -> tuple[int, bytes]:
    body = {"error": error, "message": message, "request_id": request_id,
            "fields": fields or []}
    return status, orjson.dumps(body)


class ServingMiddleware:
    def __init__(self, app: Any, *, metrics: ServingMetrics, max_body_bytes: int,
                 access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = self._request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        bind_request_id(request_id)
        status_box = {"status": 500, "started": False}
        rid_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                status_box["started"] = True
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        limit = self.max_body_bytes
        received = 0

        async def receive_wrapper() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        try:
            length = _content_length(scope)
            if length is not None and length > limit:
                await self._error(send_wrapper, *error_json(
                    413, "payload_too_large",
                    f"request body of {length} bytes exceeds the limit of {limit} bytes",
                    request_id))
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if not status_box["started"]:
                await self._error(send_wrapper, *error_json(
                    413, "payload_too_large",
                    f"request body exceeds the limit of {limit} bytes", request_id))
        except Exception as exc:
            log.error("unhandled_error", path=scope.get("path"),
                      error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            if not status_box["started"]:
                await self._error(send_wrapper, *error_json(
                    500, "internal_error",
                    "internal error; quote the request_id when reporting it", request_id))
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            status = status_box["status"]
            m = self.metrics
            m.requests.labels(endpoint, method, str(status)).inc()
            m.latency.labels(endpoint, method).observe(elapsed)
            if status >= 500:
                m.errors.labels(endpoint).inc()
            if self.access_log:
                log.info("request", method=method, endpoint=endpoint, status=status,
                         duration_ms=round(elapsed * 1000, 3))
            clear_request_context()

    @staticmethod
    def _request_id(scope: dict[str, Any]) -> str:
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                text = value.decode("latin-1")
                if _SANE_ID.match(text):
                    return text
                break
        return uuid.uuid4().hex

    @staticmethod
    async def _error(send: Any, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
