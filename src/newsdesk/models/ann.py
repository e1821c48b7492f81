"""Inner-product vector index over the live articles (add / remove / search, thread-safe).

Storage is a dense float32 matrix with an id array; `remove` swaps the last row into the hole,
so the matrix stays compact and exact search is one matrix product. That is right for ~10k
live articles (10k x 384 x 4 B = 15 MB, a few ms per query batch).

`backend="hnsw"` adds a faiss IndexHNSWFlat over the same vectors for the ~100k catalog.
HNSW cannot delete, so removed or replaced vectors become tombstones that a faiss IDSelector
hides from search; the graph is rebuilt when tombstones pass `rebuild_fraction` of it.
Searches restricted by a small `allowed` set run exactly over that subset instead.

One lock serialises mutations and searches: numpy/faiss release the GIL inside the product,
and at these sizes a search holds the lock for milliseconds.

Saved as a directory without pickle: vectors.npy, ids.json, meta.json (+ hnsw.faiss and
labels.json for the HNSW backend).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from newsdesk.deps import require
from newsdesk.errors import BundleError, ConfigError, InvalidInput

FORMAT_VERSION = 1
BACKENDS = ("exact", "hnsw")


class VectorIndex:
    """Vectors by article id; `search` returns the k largest inner products per query."""

    def __init__(
        self,
        dim: int,
        *,
        backend: str = "exact",
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        exact_below: int = 2048,
        rebuild_fraction: float = 0.3,
    ) -> None:
        if dim < 1:
            raise ConfigError(f"dim: must be >= 1, got {dim}")
        if backend not in BACKENDS:
            raise ConfigError(f"backend: must be one of {BACKENDS}, got '{backend}'")
        if not 0.0 < rebuild_fraction <= 1.0:
            raise ConfigError(f"rebuild_fraction: must be in (0, 1], got {rebuild_fraction}")
        self.dim = dim
        self.backend = backend
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.exact_below = exact_below  # allowed sets smaller than this are searched exactly
        self.rebuild_fraction = rebuild_fraction
        self._lock = threading.RLock()
        self._matrix = np.zeros((16, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        # HNSW state: faiss label -> id (None once tombstoned) and id -> live label
        self._hnsw: Any = None
        self._labels: list[str | None] = []
        self._label_of: dict[str, int] = {}
        self._alive = np.zeros(0, dtype=bool)  # by label: False once tombstoned
        if backend == "hnsw":
            self._hnsw = self._new_hnsw()

    # ------------------------------------------------------------------ mutation
    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def __contains__(self, article_id: object) -> bool:
        with self._lock:
            return article_id in self._row

    def ids(self) -> list[str]:
        """The live ids (in storage order, which changes on remove)."""
        with self._lock:
            return list(self._ids)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace vectors. ids: n unique strings; vectors: (n, dim) float."""
        vecs = self._check_vectors(vectors, "vectors")
        ids = [str(i) for i in ids]
        if len(ids) != vecs.shape[0]:
            raise InvalidInput(f"ids: {len(ids)} ids for {vecs.shape[0]} vectors", field="ids")
        if len(set(ids)) != len(ids):
            raise InvalidInput("ids: duplicate ids in one add() call", field="ids")
        with self._lock:
            self._reserve(len(self._ids) + len(ids))
            for article_id, vec in zip(ids, vecs, strict=True):
                row = self._row.get(article_id)
                if row is None:
                    row = len(self._ids)
                    self._ids.append(article_id)
                    self._row[article_id] = row
                self._matrix[row] = vec
            if self._hnsw is not None:
                for article_id in ids:
                    self._tombstone(article_id)
                start = len(self._labels)
                self._labels.extend(ids)
                self._label_of.update({a: start + j for j, a in enumerate(ids)})
                self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
                self._hnsw.add(vecs)
                self._maybe_rebuild()

    def remove(self, ids: Iterable[str]) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        removed = 0
        with self._lock:
            for article_id in ids:
                row = self._row.pop(str(article_id), None)
                if row is None:
                    continue
                last = len(self._ids) - 1
                if row != last:  # swap-remove keeps the matrix dense
                    moved = self._ids[last]
                    self._matrix[row] = self._matrix[last]
                    self._ids[row] = moved
                    self._row[moved] = row
                self._ids.pop()
                if self._hnsw is not None:
                    self._tombstone(str(article_id))
                removed += 1
            if self._hnsw is not None and removed:
                self._maybe_rebuild()
        return removed

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ids, (len(ids), dim); raises InvalidInput for an unknown id."""
        with self._lock:
            rows = []
            for article_id in ids:
                if article_id not in self._row:
                    raise InvalidInput(f"ids: unknown id '{article_id}'", field="ids")
                rows.append(self._row[article_id])
            return self._matrix[rows].copy()

    # ------------------------------------------------------------------ search
    def search(
        self, query_vectors: np.ndarray, k: int, allowed: Iterable[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids by inner product for each query.

        query_vectors: (m, dim) (or (dim,) for one query). allowed: optional ids to restrict
        the search to (unknown ids are ignored). Returns (ids, scores): an object array of str
        and a float32 array, both (m, k') with k' = min(k, number of searchable vectors),
        best first.
        """
        queries = self._check_vectors(np.atleast_2d(query_vectors), "query_vectors")
        if k < 1:
            raise InvalidInput(f"k: must be >= 1, got {k}", field="k")
        with self._lock:
            if allowed is not None:
                rows = np.fromiter(
                    (self._row[a] for a in set(allowed) if a in self._row), dtype=np.int64
                )
                rows.sort()  # set order is arbitrary; sorted rows make ties deterministic
                if self._hnsw is not None and len(rows) >= self.exact_below:
                    return self._search_hnsw(queries, k, rows)
                return self._search_exact(queries, k, rows)
            if self._hnsw is not None and len(self._ids) >= self.exact_below:
                return self._search_hnsw(queries, k, None)
            return self._search_exact(queries, k, None)

    def _search_exact(
        self, queries: np.ndarray, k: int, rows: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._ids) if rows is None else len(rows)
        kk = min(k, n)
        m = queries.shape[0]
        if kk == 0:
            return np.empty((m, 0), dtype=object), np.empty((m, 0), dtype=np.float32)
        base = self._matrix[: len(self._ids)] if rows is None else self._matrix[rows]
        scores = queries @ base.T  # (m, n)
        if kk < n:
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        else:
            top = np.tile(np.arange(n), (m, 1))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        storage_rows = top if rows is None else rows[top]
        ids = np.asarray(self._ids, dtype=object)[storage_rows]
        return ids, np.take_along_axis(top_scores, order, axis=1).astype(np.float32)

    def _search_hnsw(
        self, queries: np.ndarray, k: int, rows: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = require("faiss", "ml")
        live = len(self._ids) if rows is None else len(rows)
        kk = min(k, live)
        if kk == 0:
            return self._search_exact(queries, k, rows)
        n_labels = len(self._labels)
        if rows is None:
            mask = self._alive
        else:
            mask = np.zeros(n_labels, dtype=bool)
            mask[[self._label_of[self._ids[r]] for r in rows]] = True
        bitmap = np.packbits(mask, bitorder="little")
        selector = faiss.IDSelectorBitmap(n_labels, faiss.swig_ptr(bitmap))
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, kk))
        scores, labels = self._hnsw.search(queries, kk, params=params)
        m = queries.shape[0]
        ids = np.empty((m, kk), dtype=object)
        out_scores = np.full((m, kk), -np.inf, dtype=np.float32)
        for i in range(m):
            found = [(lab, s) for lab, s in zip(labels[i], scores[i], strict=True) if lab >= 0]
            if len(found) < kk:  # the graph walk ran dry: answer this query exactly
                exact_ids, exact_scores = self._search_exact(queries[i : i + 1], kk, rows)
                ids[i], out_scores[i] = exact_ids[0], exact_scores[0]
                continue
            for j, (lab, s) in enumerate(found):
                ids[i, j] = self._labels[lab]
                out_scores[i, j] = s
        return ids, out_scores

    # ------------------------------------------------------------------ HNSW upkeep
    def _new_hnsw(self) -> Any:
        faiss = require("faiss", "ml")
        index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        return index

    def _tombstone(self, article_id: str) -> None:
        label = self._label_of.pop(article_id, None)
        if label is not None:
            self._labels[label] = None
            self._alive[label] = False

    def _maybe_rebuild(self) -> None:
        dead = len(self._labels) - len(self._label_of)
        if self._labels and dead / len(self._labels) > self.rebuild_fraction:
            self._rebuild_hnsw()

    def _rebuild_hnsw(self) -> None:
        """A fresh graph over the live vectors; labels become storage rows."""
        self._hnsw = self._new_hnsw()
        n = len(self._ids)
        if n:
            self._hnsw.add(self._matrix[:n])
        self._labels = list(self._ids)
        self._label_of = {a: i for i, a in enumerate(self._ids)}
        self._alive = np.ones(n, dtype=bool)

    # ------------------------------------------------------------------ helpers
    def _reserve(self, n: int) -> None:
        if n > self._matrix.shape[0]:
            grown = np.zeros((max(n, 2 * self._matrix.shape[0]), self.dim), dtype=np.float32)
            grown[: len(self._ids)] = self._matrix[: len(self._ids)]
            self._matrix = grown

    def _check_vectors(self, vectors: np.ndarray, field: str) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise InvalidInput(
                f"{field}: expected shape (n, {self.dim}), got {arr.shape}", field=field
            )
        if not np.isfinite(arr).all():
            raise InvalidInput(f"{field}: contains NaN or inf", field=field)
        return np.ascontiguousarray(arr)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write the index to a directory (created; existing files are replaced)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with self._lock:
            n = len(self._ids)
            np.save(out / "vectors.npy", self._matrix[:n], allow_pickle=False)
            _write_json(out / "ids.json", self._ids)
            meta = {
                "format_version": FORMAT_VERSION,
                "dim": self.dim,
                "count": n,
                "backend": self.backend,
                "hnsw_m": self.hnsw_m,
                "ef_construction": self.ef_construction,
                "ef_search": self.ef_search,
                "exact_below": self.exact_below,
                "rebuild_fraction": self.rebuild_fraction,
            }
            if self._hnsw is not None:
                faiss = require("faiss", "ml")
                faiss.write_index(self._hnsw, str(out / "hnsw.faiss.tmp"))
                os.replace(out / "hnsw.faiss.tmp", out / "hnsw.faiss")
                _write_json(out / "labels.json", self._labels)
            _write_json(out / "meta.json", meta)  # last: a complete meta means a complete save

    @classmethod
    def load(cls, directory: str | Path) -> VectorIndex:
        """Read an index written by `save`."""
        src = Path(directory)
        try:
            meta = json.loads((src / "meta.json").read_text())
            ids = json.loads((src / "ids.json").read_text())
            vectors = np.load(src / "vectors.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"vector index '{src}': {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"vector index '{src}': format_version {meta.get('format_version')}, "
                f"this code reads {FORMAT_VERSION}"
            )
        if vectors.shape != (len(ids), meta["dim"]):
            raise BundleError(
                f"vector index '{src}': vectors {vectors.shape} do not match "
                f"{len(ids)} ids of dim {meta['dim']}"
            )
        index = cls(
            meta["dim"],
            backend=meta["backend"],
            hnsw_m=meta["hnsw_m"],
            ef_construction=meta["ef_construction"],
            ef_search=meta["ef_search"],
            exact_below=meta["exact_below"],
            rebuild_fraction=meta["rebuild_fraction"],
        )
        index._reserve(len(ids))
        index._matrix[: len(ids)] = vectors
        index._ids = list(ids)
        index._row = {a: i for i, a in enumerate(ids)}
        if index.backend == "hnsw":
            faiss = require("faiss", "ml")
            if (src / "hnsw.faiss").is_file():
                index._hnsw = faiss.read_index(str(src / "hnsw.faiss"))
                index._hnsw.hnsw.efSearch = index.ef_search
                index._labels = json.loads((src / "labels.json").read_text())
                index._label_of = {a: i for i, a in enumerate(index._labels) if a is not None}
                index._alive = np.array([a is not None for a in index._labels], dtype=bool)
            else:
                index._rebuild_hnsw()
        return index


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)
