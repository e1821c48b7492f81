"""The response cache: one SQLite file keyed by (content hash, prompt version, model).

A hit skips the provider entirely (no budget, no tokens). Callers cache only deterministic
answers (temperature 0): a sampled answer would be frozen otherwise. WAL mode lets several
processes (serving workers, a batch job) share one file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from newsdesk.llm.provider import Completion


def content_hash(payload: Any) -> str:
    """sha256 of the canonical JSON of `payload` (messages, parameters, schema ...)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """Completions by (content_hash, prompt_version, model); thread- and process-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=10, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (content_hash TEXT NOT NULL, prompt_version "
            "TEXT NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL, prompt_tokens INTEGER, "
            "completion_tokens INTEGER, latency_s REAL, finish_reason TEXT, provider TEXT, "
            "created REAL, PRIMARY KEY (content_hash, prompt_version, model))")

    def get(self, key: str, prompt_version: str, model: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens, latency_s, finish_reason, "
                "provider FROM responses WHERE content_hash=? AND prompt_version=? AND model=?",
                (key, prompt_version, model)).fetchone()
        if row is None:
            return None
        text, p, c, latency, finish, provider = row
        return Completion(text=text, prompt_tokens=int(p or 0), completion_tokens=int(c or 0),
                          latency_s=float(latency or 0.0), model=model,
                          provider=provider or "", finish_reason=finish or "stop", cached=True)

    def put(self, key: str, prompt_version: str, completion: Completion) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, prompt_version, completion.model, completion.text,
                 completion.prompt_tokens, completion.completion_tokens, completion.latency_s,
                 completion.finish_reason, completion.provider, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
