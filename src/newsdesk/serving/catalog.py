"""The serving catalog: the live articles the API may return, newest first.

Serving keeps its own light copy of the catalog (id, category, language, publication and expiry
times; no text, no vectors) so that it can

* drop anything deleted or expired from every response at once, whatever the model returns;
* serve the last stage of the fallback chain (the editorial list: latest live articles) and
  filter trending lists without the model;
* replay runtime changes (PUT / DELETE since start) into a freshly loaded model before a swap.

Reads happen on the event loop and writes from request handlers; a lock keeps the order index
consistent with the map.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsdesk.data.schema import Article


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    article_id: str
    published_ts: float  # Unix seconds
    expires_ts: float | None
    category: str
    language: str


def entry_of(article: Article) -> CatalogEntry:
    return CatalogEntry(
        article.article_id, article.published_at.timestamp(),
        article.expires_at.timestamp() if article.expires_at else None,
        article.category, article.language,
    )


def matches(entry: CatalogEntry, filters: Mapping[str, Any]) -> bool:
    """Whether an article passes request filters (category / language: a value or a list)."""
    for key in ("category", "language"):
        wanted = filters.get(key)
        if wanted is None:
            continue
        value = getattr(entry, key)
        if isinstance(wanted, str | bytes):
            if value != wanted:
                return False
        elif value not in wanted:
            return False
    return True


class LiveCatalog:
    """Article entries by id plus an index ordered by publication time (newest last)."""

    def __init__(self, *, max_age_s: float | None = None) -> None:
        self.max_age_s = max_age_s
        self._entries: dict[str, CatalogEntry] = {}
        self._order: list[tuple[float, str]] = []  # (published_ts, id), ascending
        self._lock = threading.Lock()
        self.upserted: dict[str, Article] = {}  # runtime changes since start (replayed on swap)
        self.removed: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._entries

    def get(self, article_id: str) -> CatalogEntry | None:
        return self._entries.get(article_id)

    def load(self, entries: Iterable[CatalogEntry]) -> None:
        """Bulk load (start-up): replaces the content."""
        with self._lock:
            self._entries = {e.article_id: e for e in entries}
            self._order = sorted((e.published_ts, e.article_id) for e in self._entries.values())

    def _put(self, entry: CatalogEntry) -> None:
        old = self._entries.get(entry.article_id)
        if old is not None:
            self._drop_order(old)
        self._entries[entry.article_id] = entry
        bisect.insort(self._order, (entry.published_ts, entry.article_id))

    def _drop_order(self, entry: CatalogEntry) -> None:
        i = bisect.bisect_left(self._order, (entry.published_ts, entry.article_id))
        if i < len(self._order) and self._order[i][1] == entry.article_id:
            del self._order[i]

    def upsert(self, articles: Iterable[Article]) -> None:
        with self._lock:
            for article in articles:
                self._put(entry_of(article))
                self.upserted[article.article_id] = article
                self.removed.discard(article.article_id)

    def remove(self, article_id: str) -> bool:
        with self._lock:
            entry = self._entries.pop(article_id, None)
            self.upserted.pop(article_id, None)
            self.removed.add(article_id)
            if entry is None:
                return False
            self._drop_order(entry)
            return True

    def is_live(self, article_id: str, now: float) -> bool:
        entry = self._entries.get(article_id)
        return entry is not None and self._live(entry, now)

    def _live(self, entry: CatalogEntry, now: float) -> bool:
        if entry.published_ts > now + 60.0:  # scheduled in the future (1 min clock slack)
            return False
        if entry.expires_ts is not None and entry.expires_ts <= now:
            return False
        return self.max_age_s is None or now - entry.published_ts <= self.max_age_s

    def latest(self, now: float) -> Iterator[CatalogEntry]:
        """Live entries, newest first (lazy: callers stop after k)."""
        for _, article_id in reversed(self._order):
            entry = self._entries.get(article_id)
            if entry is None:
                continue
            if self.max_age_s is not None and now - entry.published_ts > self.max_age_s:
                return  # everything further is older still
            if self._live(entry, now):
                yield entry

    def count_live(self, now: float) -> int:
        return sum(1 for e in list(self._entries.values()) if self._live(e, now))


def load_catalog(dataset_dir: str | Path | None, *, max_age_s: float | None = None
                 ) -> LiveCatalog:
    """A catalog filled from a dataset directory's articles table (empty without one)."""
    catalog = LiveCatalog(max_age_s=max_age_s)
    if dataset_dir is None:
        return catalog
    from newsdesk.data.dataset import Dataset

    frame = Dataset(dataset_dir).read("articles").select(
        "article_id", "published_at", "expires_at", "category", "language"
    )
    published = frame["published_at"].dt.epoch("us").to_list()
    expires = frame["expires_at"].dt.epoch("us").to_list()
    catalog.load(
        CatalogEntry(aid, pub / 1e6, None if exp is None else exp / 1e6, cat or "unknown",
                     lang or "en")
        for aid, pub, exp, cat, lang in zip(
            frame["article_id"].to_list(), published, expires, frame["category"].to_list(),
            frame["language"].to_list(), strict=True,
        )
    )
    return catalog
