"""The live article catalog: metadata, embeddings and liveness of every known article.

Articles are addressed by a dense integer index (the order they were added), which every model
array uses (co-click matrix rows, CF item factors, feature gathering). An index is never reused:
removing an article only clears its `live` flag, so arrays built at training time stay aligned.

Concurrency: `upsert` writes rows in place and publishes them by bumping `size` last, so readers
that took `size` first never see a half-written row; growth copies into new arrays and swaps
them. Writers serialise on a lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from newsdesk.content.embedder import Embedder, article_text
from newsdesk.data.schema import Article

NEVER = np.inf  # expires_at of an article without expiry
# entity codes kept per article (the `entities` tags a CMS attaches; more are cut): the
# ranking features compare a candidate's entities with those of the reader's clicks
MAX_ENTITIES = 6


def _unix(value: object) -> float:
    if value is None:
        return float(NEVER)
    return float(value.timestamp())  # type: ignore[attr-defined]


class ArticleCatalog:
    """Growable column store of articles; index i is stable for the catalog's lifetime."""

    def __init__(self, dim: int, *, capacity: int = 1024) -> None:
        self.dim = dim
        self.size = 0
        self.ids: list[str] = []
        self.titles: list[str] = []
        self.index: dict[str, int] = {}
        self.categories: list[str] = []
        self.category_index: dict[str, int] = {}
        self.languages: list[str] = []
        self.language_index: dict[str, int] = {}
        self.entity_names: list[str] = []
        self.entity_index: dict[str, int] = {}
        self._lock = threading.Lock()
        self._alloc(max(capacity, 16))
        self.version = 0  # bumped on every change (caches of live sets key on it)

    def _alloc(self, capacity: int) -> None:
        old = self.size
        published = np.zeros(capacity, dtype=np.float64)
        expires = np.full(capacity, NEVER, dtype=np.float64)
        category = np.zeros(capacity, dtype=np.int32)
        language = np.zeros(capacity, dtype=np.int32)
        entities = np.full((capacity, MAX_ENTITIES), -1, dtype=np.int32)
        live = np.zeros(capacity, dtype=bool)
        emb = np.zeros((capacity, self.dim), dtype=np.float32)
        if old:
            published[:old] = self.published[:old]
            expires[:old] = self.expires[:old]
            category[:old] = self.category[:old]
            language[:old] = self.language[:old]
            entities[:old] = self.entities[:old]
            live[:old] = self.live[:old]
            emb[:old] = self.embeddings[:old]
        self.published, self.expires, self.category, self.live = published, expires, category, live
        self.language, self.entities = language, entities
        self.embeddings = emb

    # -- writes ---------------------------------------------------------------------------------
    def category_code(self, name: str) -> int:
        code = self.category_index.get(name)
        if code is None:
            code = len(self.categories)
            self.categories.append(name)
            self.category_index[name] = code
        return code

    def language_code(self, name: str) -> int:
        code = self.language_index.get(name)
        if code is None:
            code = len(self.languages)
            self.languages.append(name)
            self.language_index[name] = code
        return code

    def entity_codes(self, names: Sequence[str]) -> np.ndarray:
        """(MAX_ENTITIES,) int32 codes of distinct entity names (case-folded), -1 padded."""
        out = np.full(MAX_ENTITIES, -1, dtype=np.int32)
        seen: list[int] = []
        for name in names:
            key = name.strip().casefold()
            if not key:
                continue
            code = self.entity_index.get(key)
            if code is None:
                code = len(self.entity_names)
                self.entity_names.append(key)
                self.entity_index[key] = code
            if code not in seen:
                seen.append(code)
            if len(seen) == MAX_ENTITIES:
                break
        out[: len(seen)] = seen
        return out

    def add(self, articles: Sequence[Article], embeddings: np.ndarray) -> np.ndarray:
        """Insert or update articles with precomputed unit embeddings (n, dim); returns indices."""
        if len(articles) != len(embeddings):
            raise ValueError("one embedding row per article is required")
        out = np.empty(len(articles), dtype=np.int64)
        with self._lock:
            for j, art in enumerate(articles):
                i = self.index.get(art.article_id)
                if i is None:
                    i = self.size
                    if i >= len(self.published) or i >= len(self.embeddings):
                        self._alloc(max(len(self.published), 2 * i, 16))
                    self.ids.append(art.article_id)
                    self.titles.append(art.title)
                    self.index[art.article_id] = i
                    self._write(i, art, embeddings[j])
                    self.size = i + 1  # publish the row last
                else:
                    self.titles[i] = art.title
                    self._write(i, art, embeddings[j])
                out[j] = i
            self.version += 1
        return out

    def _write(self, i: int, art: Article, vector: np.ndarray) -> None:
        self.published[i] = art.published_at.timestamp()
        self.expires[i] = _unix(art.expires_at)
        self.category[i] = self.category_code(art.category)
        self.language[i] = self.language_code(art.language.lower())
        self.entities[i] = self.entity_codes(art.entities)
        self.embeddings[i] = vector
        self.live[i] = True

    def upsert(self, articles: Sequence[Article], embedder: Embedder | None) -> np.ndarray:
        """Embed (zero vectors without an embedder: such articles reach users by recency
        and popularity only) and insert or update."""
        if embedder is None:
            vectors = np.zeros((len(articles), self.dim), dtype=np.float32)
        else:
            vectors = embedder.embed([article_text(a.title, a.abstract) for a in articles])
        return self.add(articles, vectors)

    def remove(self, article_id: str) -> bool:
        """Take an article out of the live set at once; False if unknown or already removed."""
        with self._lock:
            i = self.index.get(article_id)
            if i is None or not self.live[i]:
                return False
            self.live[i] = False
            self.version += 1
            return True

    # -- reads ----------------------------------------------------------------------------------
    def lookup(self, article_ids: Sequence[str]) -> np.ndarray:
        """Catalog indices of ids, -1 for unknown ones; shape (len(article_ids),)."""
        # map() over dict.get: half the cost of a generator expression per id
        return np.fromiter(map(self.index.get, article_ids, repeat(-1)), dtype=np.int64,
                           count=len(article_ids))

    def live_indices(self, now: float, max_age_hours: float | None = None) -> np.ndarray:
        """Indices of articles live at `now`: published, not expired, not removed, young enough."""
        n = self.size
        ok = self.live[:n] & (self.published[:n] <= now) & (self.expires[:n] > now)
        if max_age_hours is not None:
            ok &= self.published[:n] >= now - max_age_hours * 3600.0
        return np.flatnonzero(ok)

    def category_name(self, i: int) -> str:
        return self.categories[int(self.category[i])]

    # -- persistence (no pickle: Parquet + .npy + JSON) -------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        n = self.size
        table = pa.table({
            "article_id": pa.array(self.ids, pa.string()),
            "title": pa.array(self.titles, pa.string()),
            "published": pa.array(self.published[:n]),
            "expires": pa.array(self.expires[:n]),
            "category": pa.array(self.category[:n]),
            "language": pa.array(self.language[:n]),
            "live": pa.array(self.live[:n]),
        })
        pq.write_table(table, directory / "articles.parquet")
        np.save(directory / "embeddings.npy", self.embeddings[:n], allow_pickle=False)
        (directory / "categories.json").write_text(json.dumps(self.categories))
        np.save(directory / "entities.npy", self.entities[:n], allow_pickle=False)
        (directory / "vocabularies.json").write_text(json.dumps(
            {"languages": self.languages, "entities": self.entity_names}))

    @classmethod
    def load(cls, directory: Path) -> ArticleCatalog:
        table = pq.read_table(directory / "articles.parquet")
        # copy-on-write map of the bundle's file: worker processes share its pages until they
        # write a row (an upsert of that article); the first article beyond the bundle's
        # moves the matrix into growable private memory (`_alloc`)
        n = table.num_rows
        emb = np.load(directory / "embeddings.npy", allow_pickle=False,
                      mmap_mode="c" if n else None)  # (an empty file cannot be mapped)
        if emb.shape[0] != n:
            raise ValueError(f"embeddings.npy has {emb.shape[0]} rows, articles.parquet {n}")
        cat = cls(int(emb.shape[1]), capacity=max(16, 2 * n))
        cat.categories = list(json.loads((directory / "categories.json").read_text()))
        cat.category_index = {c: i for i, c in enumerate(cat.categories)}
        cat.ids = table.column("article_id").to_pylist()
        cat.titles = table.column("title").to_pylist()
        cat.index = {a: i for i, a in enumerate(cat.ids)}
        cat.published[:n] = table.column("published").to_numpy()
        cat.expires[:n] = table.column("expires").to_numpy()
        cat.category[:n] = table.column("category").to_numpy()
        cat.live[:n] = table.column("live").to_numpy(zero_copy_only=False)
        # bundles written before languages and entities were kept: one unknown language,
        # no entities (the features that read them are then constant)
        vocab_file = directory / "vocabularies.json"
        if vocab_file.exists() and "language" in table.column_names:
            vocab = json.loads(vocab_file.read_text())
            cat.languages = list(vocab["languages"])
            cat.entity_names = list(vocab["entities"])
            cat.language[:n] = table.column("language").to_numpy()
            cat.entities[:n] = np.load(directory / "entities.npy", allow_pickle=False)
        else:
            cat.languages = ["und"]
        cat.language_index = {x: i for i, x in enumerate(cat.languages)}
        cat.entity_index = {x: i for i, x in enumerate(cat.entity_names)}
        cat.embeddings = emb.view(np.ndarray)  # a plain view: no np.memmap overhead per read
        cat.size = n
        return cat
