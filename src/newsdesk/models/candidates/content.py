"""Content-based: live articles closest to the user's profile (recency-weighted mean embedding
of their clicks). New articles are searchable as soon as they are upserted (embedded on the way
in), which is the other cold-start path.

Search: below `projected_min_live` live articles, one exact inner product over the live set.
Above it the exact product is memory-bound (10k live x 256-384 float32 dims is 10-15 MB read
per request, ~1.5 ms), so the search runs in two stages: inner products in a PCA projection of
the embeddings (`dims` components fitted once on a sample of the catalog; the live set's
projected matrix is kept per live set) pick `rescore_factor * n` articles, and the exact
inner product re-scores only those. Returned scores are always exact; what the projection can
cost is recall (measured on the full benchmark state: benchmarks/recommend_path.py reports it
as `content_recall`)."""

from __future__ import annotations

import numpy as np

from newsdesk.models.candidates.base import (
    IndexedGenerator,
    UserView,
    Workspace,
    because_you_read,
    largest,
    top_n,
)


def pca_basis(embeddings: np.ndarray, dims: int, *, sample: int = 20_000,
              seed: int = 0) -> np.ndarray:
    """(dim, dims) float32 orthonormal basis of the top principal directions (uncentred:
    inner products, not distances, are what the search preserves) of a seeded sample."""
    n = len(embeddings)
    rows = (np.arange(n) if n <= sample
            else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False)))
    x = np.asarray(embeddings[rows], dtype=np.float64)
    _, vectors = np.linalg.eigh(x.T @ x)
    return np.ascontiguousarray(vectors[:, ::-1][:, :dims].astype(np.float32))


class ContentGenerator(IndexedGenerator):
    name = "content"

    def __init__(self, ws: Workspace, *, projected_min_live: int = 4000, dims: int = 96,
                 rescore_factor: int = 4) -> None:
        super().__init__(ws)
        self.projected_min_live = projected_min_live
        self.dims = dims
        self.rescore_factor = rescore_factor
        self._basis: np.ndarray | None = None

    def basis(self) -> np.ndarray:
        if self._basis is None:  # a benign race: two threads compute the same basis
            cat = self.ws.catalog
            self._basis = pca_basis(cat.embeddings[: cat.size], self.dims)
        return self._basis

    def _projected(self, live: np.ndarray) -> np.ndarray:
        basis = self.basis()
        return self.ws.derived(
            live, "content_projection",
            lambda ix: np.ascontiguousarray(self.ws.live_embeddings(ix) @ basis))

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        live = view.live
        if not view.has_history or len(live) == 0 or n <= 0:
            return live[:0], np.zeros(0)
        emb = self.ws.live_embeddings(live)
        m = self.rescore_factor * n
        dim = emb.shape[1]
        if len(live) < self.projected_min_live or m >= len(live) or self.dims >= dim:
            return top_n(live, (emb @ view.profile).astype(np.float64), n)
        rough = self._projected(live) @ (view.profile @ self.basis())
        pos = largest(rough, m)
        exact = (emb[pos] @ view.profile).astype(np.float64)
        return top_n(live[pos], exact, n)

    def exact_propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The single-stage search over every live article (the reference for recall)."""
        if not view.has_history or len(view.live) == 0:
            return view.live[:0], np.zeros(0)
        sims = self.ws.live_embeddings(view.live) @ view.profile
        return top_n(view.live, sims.astype(np.float64), n)

    def neighbours(self, i: int, live: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Live articles most similar to article i (itself excluded)."""
        sims = (self.ws.live_embeddings(live) @ self.ws.catalog.embeddings[i]).astype(np.float64)
        other = live != i
        return top_n(live[other], sims[other], n)

    def reason(self, view: UserView, i: int) -> str:
        return because_you_read(self.ws, view, i)
