"""Embedding cache keyed by content hash, so an article is embedded once per embedder.

    EmbeddingCache           the contract: get_many / put_many over hex keys
    InMemoryEmbeddingCache   a dict; tests and one-shot jobs
    SqliteEmbeddingCache     one SQLite file of float32 blobs; survives re-trains and restarts
    CachedEmbedder           wraps any Embedder and embeds only the cache misses

The key is sha256(embedder.name + NUL + text): a different model, variant or truncation has a
different `name`, so vectors of different embedders never mix.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from newsdesk.content.embedder import Embedder
from newsdesk.content.sentence_transformer import check_texts
from newsdesk.errors import StoreUnavailable


def cache_key(embedder_name: str, text: str) -> str:
    """sha256 hex of (embedder name, text)."""
    return hashlib.sha256(f"{embedder_name}\0{text}".encode()).hexdigest()


class EmbeddingCache(ABC):
    """Vectors by key. Implementations are safe to share between threads."""

    @abstractmethod
    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those keys that are present (float32, shape (dim,))."""

    @abstractmethod
    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        """Store vectors; an existing key is overwritten."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of cached vectors."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for in-memory caches
        """Release resources (files, connections)."""


class InMemoryEmbeddingCache(EmbeddingCache):
    def __init__(self) -> None:
        self._data: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        with self._lock:
            return {k: self._data[k] for k in keys if k in self._data}

    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        with self._lock:
            for key, vec in items.items():
                self._data[key] = np.array(vec, dtype=np.float32).reshape(-1)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class SqliteEmbeddingCache(EmbeddingCache):
    """One table `embeddings(key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)` in a SQLite file.

    WAL journaling lets several processes (trainer, server) read while one writes.
    """

    _CHUNK = 500  # keys per SELECT ... IN (...): below SQLite's host-parameter limit

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings "
                "(key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)"
            )
            self._conn.commit()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedding cache '{self.path}': {exc}") from exc
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(wanted), self._CHUNK):
                chunk = wanted[start : start + self._CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, dim, vec FROM embeddings WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, dim, blob in rows:
                    vec = np.frombuffer(blob, dtype="<f4")
                    if vec.shape[0] == dim:  # a torn/foreign row is a miss, not a crash
                        found[key] = vec.astype(np.float32)
        return found

    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        rows = []
        for key, vec in items.items():
            flat = np.asarray(vec, dtype="<f4").reshape(-1)
            rows.append((key, int(flat.shape[0]), flat.tobytes()))
        if not rows:
            return
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (key, dim, vec) VALUES (?, ?, ?)", rows
            )
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CachedEmbedder(Embedder):
    """An Embedder that looks every text up in `cache` and embeds only the misses.

    Duplicate texts within one call are embedded once. Since construction, `misses` counts the
    texts the inner embedder embedded and `hits` all other texts asked for.
    """

    def __init__(self, embedder: Embedder, cache: EmbeddingCache) -> None:
        self.inner = embedder
        self.cache = cache
        self.name = embedder.name
        self.dim = embedder.dim
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts -> (len(texts), dim) float32 unit rows, from cache where possible."""
        items = check_texts(texts)
        keys = [cache_key(self.name, t) for t in items]
        cached = {k: v for k, v in self.cache.get_many(keys).items() if v.shape[0] == self.dim}
        todo: dict[str, str] = {}  # key -> text, first occurrence order
        for key, text in zip(keys, items, strict=True):
            if key not in cached and key not in todo:
                todo[key] = text
        if todo:
            fresh = self.inner.embed(list(todo.values()))
            new = dict(zip(todo.keys(), fresh, strict=True))
            self.cache.put_many(new)
            cached.update(new)
        with self._lock:
            n_miss = len(todo)
            self.misses += n_miss
            self.hits += len(keys) - n_miss
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = cached[key]
        return out

    @property
    def hit_rate(self) -> float:
        """Fraction of texts served from the cache so far (0.0 before any call)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
