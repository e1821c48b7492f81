"""Who may call /v1, how often, and the audit of admin calls: one ASGI layer.

Runs inside `ServingMiddleware` (so every answer here carries the request id and is counted in
the request metrics) and before routing (a refused request costs no body parsing):

1. **rate limit** (`serving/rate_limit.py`) per client over every `/v1/...` route: the client
   is the presented API key when it is a known key (public or admin), else the client address
   (an unknown key does not buy a fresh bucket). Over the limit: 429, `Retry-After`, and the
   error body naming the field that identified the client (`X-API-Key` or `client`);
2. **API keys** of the public routes (`NEWSDESK_API_KEYS`): when set, a `/v1` route outside the
   admin ones needs `X-API-Key` equal to one of them (or to the admin key): missing 401,
   unknown 403. The admin routes keep their own check (the admin key, `routes/admin.py`);
3. **audit**: every call of an admin route (`/v1/admin/...`, `/v1/users/...`,
   `/v1/experiments/...`), allowed or refused, appends a line to `<state_dir>/audit.jsonl` and
   the structured log (`serving/privacy.py`) with the pseudonymised actor, the route template
   (never the raw path: it may hold a user id) and the status.

/healthz, /readyz, /metrics, /docs and the dashboard's pages are not limited (probes and
scrapers must never be refused).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from prometheus_client import Counter

from newsdesk.serving.middleware import error_json
from newsdesk.serving.privacy import AuditLog, Pseudonymiser
from newsdesk.serving.rate_limit import RateLimiter, retry_after_header

AUDITED_PREFIXES = ("/v1/admin/", "/v1/users/", "/v1/experiments/")


class AccessGuard:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: Any, *, limiter: RateLimiter | None, api_keys: list[str],
                 admin_key: str | None, pseudonymise: Pseudonymiser, audit: AuditLog,
                 rate_limited: Counter) -> None:
        self.app = app
        self.limiter = limiter
        self.api_keys = [k.encode() for k in api_keys]
        self.admin_key = admin_key.encode() if admin_key else None
        self.pseudonymise = pseudonymise
        self.audit = audit
        self.rate_limited = rate_limited

    def _known(self, key: bytes) -> bool:
        known = [*self.api_keys, *([self.admin_key] if self.admin_key else [])]
        # compare against every key (no early exit): the time does not say which one matched
        return any([hmac.compare_digest(key, k) for k in known])  # noqa: C419

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        key = next((v for k, v in scope.get("headers", ()) if k == b"x-api-key"), None)
        known = key is not None and self._known(key)
        client_addr = (scope.get("client") or ("unknown", 0))[0]
        audited = path.startswith(AUDITED_PREFIXES)
        status_box = {"status": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        try:
            refused = await self._refusal(path, key, known, client_addr)
            if refused is not None:
                await self._send_error(send_wrapper, scope, *refused)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            if audited:
                self._audit(scope, key.decode("latin-1") if key else None, client_addr,
                            status_box["status"])

    async def _refusal(self, path: str, key: bytes | None, known: bool, client_addr: str
                       ) -> tuple[int, str, str, str, dict[str, str]] | None:
        if self.limiter is not None:
            by_key = known and key is not None
            client = ("k:" + self.pseudonymise(key.decode("latin-1"))
                      if known and key is not None else "a:" + self.pseudonymise(client_addr))
            wait = await self.limiter.acquire(client)
            if wait > 0:
                self.rate_limited.labels("key" if by_key else "address").inc()
                field = "X-API-Key" if by_key else "client"
                return (429, "rate_limited",
                        f"field '{field}': over the rate limit of {self.limiter.rate:g} "
                        f"requests/s (burst {self.limiter.burst}); retry after "
                        f"{wait:.2f} s", field, {"retry-after": retry_after_header(wait)})
        admin_route = path.startswith(AUDITED_PREFIXES)
        if self.api_keys and not admin_route:
            if key is None:
                return (401, "unauthorized", "field 'X-API-Key': missing API key header",
                        "X-API-Key", {"www-authenticate": "ApiKey"})
            if not known:
                return (403, "forbidden", "field 'X-API-Key': unknown API key", "X-API-Key",
                        {})
        return None

    @staticmethod
    async def _send_error(send: Any, scope: dict[str, Any], status: int, error: str,
                          message: str, field: str, headers: dict[str, str]) -> None:
        rid = str(scope.get("state", {}).get("request_id", ""))
        _, body = error_json(status, error, message, rid, [{"field": field,
                                                            "message": message}])
        raw = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()),
               *((k.encode(), v.encode()) for k, v in headers.items())]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def _audit(self, scope: dict[str, Any], key: str | None, client_addr: str,
               status: int) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        outcome = "ok" if status < 400 else "refused" if status in (401, 403, 429) else "error"
        target = (scope.get("path_params") or {}).get("user_id")
        self.audit.record(actor=self.audit.actor(key, client_addr),
                          method=scope.get("method", ""), path=route, status=status,
                          request_id=str(scope.get("state", {}).get("request_id", "")),
                          outcome=outcome,
                          target=self.pseudonymise(target) if target else None)


def install_access_guard(app: Any, settings: Any, registry: Any) -> None:
    """Build the guard from the settings and add it to the app (before ServingMiddleware, so
    that it runs inside it). Also installs the log redactor for the process and leaves the
    pseudonymiser on `app.state.pseudonymise` and the limiter on `app.state.rate_limiter`."""
    from newsdesk.monitoring.logging import set_redactor
    from newsdesk.serving.privacy import AUDIT_FILE, AccessLogFilter, Redactor, load_key
    from newsdesk.serving.rate_limit import make_rate_limiter

    state_dir = settings.resolved_state_dir
    key = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    pseudonymise = Pseudonymiser(load_key(state_dir, key))
    set_redactor(Redactor(pseudonymise))
    access = logging.getLogger("uvicorn.access")  # uvicorn's own lines (--access-log)
    access.filters = [f for f in access.filters if not isinstance(f, AccessLogFilter)]
    access.addFilter(AccessLogFilter(pseudonymise))
    errors = Counter("newsdesk_rate_limit_errors_total",
                     "Rate-limit checks that could not reach Redis (requests allowed)",
                     registry=registry)
    limited = Counter("newsdesk_rate_limited_total", "Requests refused with 429, by client kind",
                      ["by"], registry=registry)
    limiter = make_rate_limiter(settings.rate_limit_per_s, settings.rate_limit_burst,
                                settings.online_store_url, on_error=errors.inc,
                                timeout_s=settings.rate_limit_timeout_ms / 1000)
    admin = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
    app.state.pseudonymise = pseudonymise
    app.state.rate_limiter = limiter
    app.add_middleware(AccessGuard, limiter=limiter, api_keys=settings.api_key_list,
                       admin_key=admin, pseudonymise=pseudonymise,
                       audit=AuditLog(state_dir / AUDIT_FILE, pseudonymise),
                       rate_limited=limited)
