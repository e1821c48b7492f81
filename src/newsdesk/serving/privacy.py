"""Pseudonymised identities in logs, redaction of content, and the admin audit trail.

* `Pseudonymiser`: a keyed hash (HMAC-SHA256, truncated to 16 hex digits) of a user id, an
  API key or a client address. The key comes from `NEWSDESK_PSEUDONYM_KEY`, else from a random
  key file created once in the state dir (mode 0600), so every worker of one deployment and
  every restart writes the same pseudonym for the same reader: log lines stay joinable for
  debugging while the raw id never reaches them. Without the key a pseudonym cannot be
  reversed or recomputed from a guessed id.
* `redact_event`: a structlog processor installed for the whole process (see
  `monitoring.logging.set_redactor`). It pseudonymises the values of identity keys
  (`user_id`, `unit`, `actor`, `client`, ...) and drops content keys (`title`, `abstract`,
  `body`, ...), whoever logs them: the rule holds for code written later, not only for the
  call sites checked today.
* `AuditLog`: one JSON line per admin call (allowed or refused) appended to
  `<state_dir>/audit.jsonl` and written to the structured log as `admin_audit`, with the
  actor pseudonymised. Appends are single `write` calls on an O_APPEND descriptor, so lines
  from several worker processes never interleave.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import orjson

from newsdesk.data.append_file import append_lines
from newsdesk.monitoring.logging import get_logger

KEY_FILE = "pseudonym.key"
AUDIT_FILE = "audit.jsonl"
# identity values are replaced by their pseudonym; content values are dropped
IDENTITY_KEYS = frozenset({"user_id", "user", "unit", "session_id", "client", "client_addr",
                           "api_key"})
CONTENT_KEYS = frozenset({"title", "abstract", "body", "text", "content", "request_body",
                          "payload", "articles", "events"})
REDACTED = "[redacted]"

log = get_logger("newsdesk.serving.audit")


class Pseudonymiser:
    """Keyed hash of identities: `p("alice") == p("alice")`, unreadable without the key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError(f"pseudonym key must have at least 16 bytes, got {len(key)}")
        self._key = key

    def __call__(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return "p_" + digest.hexdigest()[:16]


def load_key(state_dir: Path, configured: str | None = None) -> bytes:
    """The configured key, else the state dir's key file (created once, atomically, 0600)."""
    if configured:
        return configured.encode()
    path = Path(state_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker (or an earlier start) made it: use that one
        for _ in range(50):  # the creator may still be writing its 64 hex digits
            key = path.read_bytes().strip()
            if len(key) >= 32:
                return key
            time.sleep(0.01)
        raise ValueError(f"pseudonym key file {path} is empty or too short") from None
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


class Redactor:
    """The structlog processor: pseudonymise identity keys, drop content keys."""

    def __init__(self, pseudonymise: Pseudonymiser) -> None:
        self.pseudonymise = pseudonymise

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        for key in list(event):
            if key in IDENTITY_KEYS:
                value = event[key]
                if isinstance(value, str) and not value.startswith("p_"):
                    event[key] = self.pseudonymise(value)
                elif isinstance(value, list | tuple):
                    event[key] = [self.pseudonymise(str(v)) for v in value]
            elif key in CONTENT_KEYS and isinstance(event[key], str | bytes | dict | list
                                                        | tuple):
                event[key] = REDACTED  # counts under these names stay
        return event


class AuditLog:
    """Admin calls, one JSON line each (see the module docstring)."""

    def __init__(self, path: Path, pseudonymise: Pseudonymiser) -> None:
        self.path = Path(path)
        self.pseudonymise = pseudonymise

    def actor(self, api_key: str | None, client: str | None) -> str:
        """Who called: the pseudonym of the presented key, else of the client address."""
        if api_key:
            return "key:" + self.pseudonymise(api_key)
        return "addr:" + self.pseudonymise(client or "unknown")

    def record(self, *, actor: str, method: str, path: str, status: int, request_id: str,
               outcome: str, target: str | None = None) -> None:
        """Append one call (`path` is the route template; `target` an already pseudonymised
        subject such as the erased user)."""
        entry = {"ts": time.time(), "actor": actor, "method": method, "route": path,
                 "status": status, "outcome": outcome, "request_id": request_id,
                 "target": target}
        line = orjson.dumps(entry) + b"\n"
        try:
            # admin calls are rare: open / append / close keeps no descriptor per app
            append_lines(self.path, line, fsync=False)
        except OSError as exc:  # the log line below still records the call
            log.error("audit_write_failed", error=f"{type(exc).__name__}: {exc}")
        log.info("admin_audit", **{k: v for k, v in entry.items() if k != "ts"})


class AccessLogFilter:
    """A `logging` filter for uvicorn's own access log (`newsdesk serve --access-log`): its
    lines carry the raw path and the client address, so a reader id in `/v1/users/{id}/...`
    and the address are replaced by pseudonyms and query strings are dropped."""

    def __init__(self, pseudonymise: Pseudonymiser) -> None:
        self.pseudonymise = pseudonymise

    def filter(self, record: Any) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            path = str(path).split("?", 1)[0]
            parts = path.split("/")
            if len(parts) > 3 and parts[1:3] == ["v1", "users"]:
                parts[3] = self.pseudonymise(parts[3])
            record.args = (self.pseudonymise(str(client)), method, "/".join(parts), version,
                           status)
        return True


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every audit entry of the file, oldest first (empty when there is none)."""
    if not Path(path).is_file():
        return []
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line]
