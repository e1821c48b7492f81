"""Hot swap of model bundles: load fully, then swap one reference.

The registry holds the *active* Recommender (the one requests use), the *previous* one (for
roll back), any *staged* ones (loaded, not yet serving) and the *pinned* ones (kept loaded
because a running experiment serves them to a variant: `pin`, looked up by `get`). A request
reads `registry.active` once at its start and keeps that object to its end, so a swap never
changes the model under a request in flight: it finishes on the old one, the next request
gets the new one, and nothing is dropped. Loading (seconds: files, embeddings, ANN index)
runs outside every lock; only the swap — one attribute assignment — is under the lock.

Runtime catalog changes (articles PUT / DELETE since start) are replayed into a freshly loaded
model before it can be promoted, and later changes go to every loaded model, so a swap or a
roll back never resurrects a deleted article nor hides a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from newsdesk.data.schema import Article
from newsdesk.errors import BundleError
from newsdesk.models.base import Recommender

Loader = Callable[[str | None], Recommender]  # bundle version (None: newest) -> loaded model
Lister = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SwapResult:
    previous: str | None
    active: str


class ModelRegistry:
    """The loaded models and which one serves (see the module docstring)."""

    def __init__(self, loader: Loader, lister: Lister | None = None, *,
                 on_swap: Callable[[str, str], None] | None = None,
                 on_refused: Callable[[str | None, str], None] | None = None) -> None:
        self._loader = self._checked(loader)
        self._on_refused = on_refused
        self.last_refused: dict[str, Any] | None = None  # the last bundle that failed to load
        self._lister = lister
        self._on_swap = on_swap
        self._active: Recommender | None = None
        self._previous: Recommender | None = None
        self._staged: dict[str, Recommender] = {}
        self._pinned: dict[str, Recommender] = {}  # experiment variants' bundles
        self._lock = threading.RLock()  # swaps and catalog mutations
        self._load_lock = threading.Lock()  # one load at a time (memory)
        self._upserts: dict[str, Article] = {}
        self._removed: set[str] = set()

    def _checked(self, loader: Loader) -> Loader:
        """The loader, remembering and reporting a bundle it refused (corrupt, missing):
        nothing of it serves, the active model stays."""
        def load(version: str | None) -> Recommender:
            try:
                return loader(version)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                self.last_refused = {"version": version, "error": error[:500]}
                if self._on_refused is not None:
                    self._on_refused(version, error)
                raise
        return load

    # -- reading -------------------------------------------------------------------------
    @property
    def active(self) -> Recommender:
        model = self._active
        if model is None:
            raise BundleError("no model bundle is loaded")
        return model

    @property
    def ready(self) -> bool:
        return self._active is not None

    @property
    def version(self) -> str | None:
        model = self._active
        return None if model is None else model.version

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "active": self.version,
                "previous": None if self._previous is None else self._previous.version,
                "staged": sorted(self._staged),
                "pinned": sorted(self._pinned),
            }

    def bundles(self) -> list[dict[str, Any]]:
        listed = self._lister() if self._lister is not None else []
        st = self.status()
        for row in listed:
            v = row.get("version")
            row["state"] = ("active" if v == st["active"] else "previous" if v == st["previous"]
                            else "staged" if v in st["staged"] else "available")
        return listed

    def loaded(self) -> list[Recommender]:
        with self._lock:
            models = [self._active, self._previous, *self._staged.values(),
                      *self._pinned.values()]
        seen: dict[int, Recommender] = {}
        for m in models:
            if m is not None:
                seen.setdefault(id(m), m)
        return list(seen.values())

    def serving(self) -> list[Recommender]:
        """The models requests can reach: the active one and experiments' pinned variants
        (not the previous model kept for a rollback, nor staged ones)."""
        with self._lock:
            models = [self._active, *self._pinned.values()]
        return list({id(m): m for m in models if m is not None}.values())

    def get(self, version: str) -> Recommender | None:
        """A loaded model by version (active, pinned, staged or previous); None if not loaded.
        Lock-free: called on every request of an experiment variant."""
        for model in (self._active, self._pinned.get(version), self._staged.get(version),
                      self._previous):
            if model is not None and model.version == version:
                return model
        return None

    # -- loading and swapping --------------------------------------------------------------
    def pin(self, version: str) -> str:
        """Keep `version` loaded for experiment variants (loads it unless already loaded);
        it stays loaded across promotes and roll backs. Raises BundleError if the loaded bundle
        reports another version than asked."""
        with self._lock:
            model = self.get(version)
            if model is not None:
                self._pinned[version] = model
                return version
        with self._load_lock:
            model = self._loader(version)  # slow, outside the swap lock
            if model.version != version:
                raise BundleError(f"bundle '{version}' loaded as version '{model.version}'")
            with self._lock:
                self._replay(model)
                self._pinned[version] = model
        return version

    def load(self, version: str | None = None) -> str:
        """Load a bundle fully into the staged set (not serving yet); returns its version."""
        with self._load_lock:
            model = self._loader(version)  # slow, outside the swap lock
            with self._lock:
                self._replay(model)
                self._staged[model.version] = model
            return model.version

    def promote(self, version: str | None = None) -> SwapResult:
        """Make a version serve (loading it first when it is not staged); atomic swap."""
        with self._lock:
            staged = version is not None and version in self._staged
            if not staged and version is not None and version in self._pinned:
                # serve the pinned object: no second copy of the same bundle in memory
                self._staged[version] = self._pinned[version]
                staged = True
        if not staged:
            if version is not None and version == self.version:
                return SwapResult(version, version)
            version = self.load(version)
        with self._lock:
            model = self._staged.pop(version)  # type: ignore[arg-type]
            old = self._active
            if old is not None and old.version != model.version:
                self._previous = old
            self._active = model  # the swap: one reference
        self._notify("promote", model.version)
        return SwapResult(None if old is None else old.version, model.version)

    def promote_first_valid(self, versions: Sequence[str]) -> SwapResult:
        """Promote the first of `versions` that loads (a corrupt or half-written bundle
        raises in its loader and is skipped); raises the last error when none does. Used
        at start: a corrupt newest bundle must not leave the service without a model."""
        error: Exception = BundleError("no bundle versions to try")
        for version in versions:
            try:
                return self.promote(version)
            except Exception as exc:  # the loader's error names the bundle and the file
                error = exc
        raise error

    def rollback(self) -> SwapResult:
        """Swap back to the previous model (kept loaded since the last promote)."""
        with self._lock:
            if self._previous is None:
                raise BundleError("nothing to roll back to: no previous model is loaded")
            old, self._active, self._previous = self._active, self._previous, self._active
            active = self._active.version
        self._notify("rollback", active)
        return SwapResult(None if old is None else old.version, active)

    def _notify(self, action: str, version: str) -> None:
        if self._on_swap is not None:
            self._on_swap(action, version)

    # -- catalog changes -------------------------------------------------------------------
    def _replay(self, model: Recommender) -> None:
        if self._upserts:
            model.upsert_articles(list(self._upserts.values()))
        for article_id in self._removed:
            model.remove_article(article_id)

    def upsert_articles(self, articles: Sequence[Article]) -> None:
        """Upsert into every loaded model (embedding happens here: call from a thread)."""
        with self._lock:
            for model in self.loaded():
                model.upsert_articles(articles)
            for a in articles:
                self._upserts[a.article_id] = a
                self._removed.discard(a.article_id)

    def remove_article(self, article_id: str) -> bool:
        with self._lock:
            found = False
            for model in self.loaded():
                found = model.remove_article(article_id) or found
            self._upserts.pop(article_id, None)
            self._removed.add(article_id)
            return found
