"""Re-ranking rules applied after the learned ranker, configurable per surface.

Filters (before ranking, cheap): already-read, maximum age, blocklisted ids and categories.
Selection (greedy over the ranked list): near-duplicate suppression (cosine of embeddings),
a per-category cap, and optional MMR diversity (lambda * relevance - (1 - lambda) * max
similarity to what is already selected; relevance min-max scaled to [0, 1]).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class RerankConfig(BaseModel):
    """Rules of one surface."""

    model_config = ConfigDict(extra="forbid")

    exclude_read: bool = True
    max_age_hours: float | None = Field(default=72.0, gt=0)
    blocklist: list[str] = Field(default_factory=list)  # article ids
    blocked_categories: list[str] = Field(default_factory=list)
    category_cap: int | None = Field(default=4, ge=1)  # max items per category in the list
    near_duplicate_threshold: float | None = Field(default=0.95, gt=0, le=1)
    mmr_lambda: float | None = Field(default=None, ge=0, le=1)  # None = no MMR


class ServingConfig(BaseModel):
    """Rules per surface; surfaces not listed use `default`."""

    model_config = ConfigDict(extra="forbid")

    default: RerankConfig = Field(default_factory=RerankConfig)
    surfaces: dict[str, RerankConfig] = Field(default_factory=dict)

    def for_surface(self, surface: str) -> RerankConfig:
        return self.surfaces.get(surface, self.default)


def allowed(rules: RerankConfig, *, idx: np.ndarray, ids: list[str], published: np.ndarray,
            category_names: list[str], read: np.ndarray, now: float,
            exclude: frozenset[str] = frozenset()) -> np.ndarray:
    """Boolean mask (n,) of candidates that pass the filters. `ids` are read only when a
    blocklist or `exclude` is set, `category_names` only when categories are blocked (the
    caller may pass empty lists otherwise)."""
    ok = np.ones(len(idx), dtype=bool)
    if rules.exclude_read and len(read):
        # a table lookup: the default sort-based isin costs twice as much at these sizes
        ok &= ~np.isin(idx, read, kind="table")
    if rules.max_age_hours is not None:
        ok &= published >= now - rules.max_age_hours * 3600.0
    blocked = set(rules.blocklist) | set(exclude)
    if blocked:
        ok &= np.fromiter((a not in blocked for a in ids), bool, len(ids))
    if rules.blocked_categories:
        bad = set(rules.blocked_categories)
        ok &= np.fromiter((c not in bad for c in category_names), bool, len(category_names))
    return ok


def select(rules: RerankConfig, scores: np.ndarray, categories: np.ndarray,
           embeddings: np.ndarray, k: int) -> np.ndarray:
    """Positions (into the inputs) of the k items chosen greedily, in display order.

    scores (n,), categories (n,) int codes, embeddings (n, dim) unit rows.
    """
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    if rules.mmr_lambda is None and rules.near_duplicate_threshold is None \
            and rules.category_cap is None:
        return order[:k]
    lam = rules.mmr_lambda
    if lam is None:
        return _greedy(rules, order, categories, embeddings, k)
    span = float(scores.max() - scores.min()) if n else 0.0
    rel = (scores - scores.min()) / span if span > 0 else np.zeros(n)
    chosen: list[int] = []
    per_cat: dict[int, int] = {}
    max_sim = np.full(n, -1.0)
    available = np.ones(n, dtype=bool)
    while len(chosen) < k and available.any():
        if lam is None:
            pick = next(int(i) for i in order if available[i])
        else:
            value = np.where(available, lam * rel - (1 - lam) * np.maximum(max_sim, 0), -np.inf)
            pick = int(np.argmax(value))
        available[pick] = False
        c = int(categories[pick])
        if rules.category_cap is not None and per_cat.get(c, 0) >= rules.category_cap:
            continue
        if rules.near_duplicate_threshold is not None and max_sim[pick] >= \
                rules.near_duplicate_threshold:
            continue
        chosen.append(pick)
        per_cat[c] = per_cat.get(c, 0) + 1
        max_sim = np.maximum(max_sim, embeddings @ embeddings[pick])
    return np.asarray(chosen, dtype=np.int64)


def _greedy(rules: RerankConfig, order: np.ndarray, categories: np.ndarray,
            embeddings: np.ndarray, k: int) -> np.ndarray:
    """`select` without MMR: walk the ranked list once, skipping items over their category's
    cap or too similar to one already chosen. Similarities are computed only against the (at
    most k) chosen items, not as one (n, dim) product per pick.

    With a cap, the walk first takes only each category's `cap` best items (the head): an item
    below its category's head can be chosen only after an item of the head was skipped as a
    near-duplicate, so when the head walk skipped none, the full walk would have chosen
    exactly the same (it would only have skipped the rest for their cap). Otherwise it walks
    the whole list."""
    cap = rules.category_cap
    if cap is not None and len(order) > cap:
        ordered_cats = categories[order]
        by_cat = np.argsort(ordered_cats, kind="stable")
        sorted_cats = ordered_cats[by_cat]
        starts = np.flatnonzero(np.r_[True, sorted_cats[1:] != sorted_cats[:-1]])
        sizes = np.diff(np.r_[starts, len(sorted_cats)])
        rank = np.empty(len(order), dtype=np.int64)  # rank of each item within its category
        rank[by_cat] = np.arange(len(order)) - np.repeat(starts, sizes)
        chosen, skipped = _walk(rules, order[rank < cap], categories, embeddings, k)
        if not skipped:
            return chosen
    return _walk(rules, order, categories, embeddings, k)[0]


def _walk(rules: RerankConfig, order: np.ndarray, categories: np.ndarray,
          embeddings: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
    """The greedy walk over `order`: (chosen positions, whether a near-duplicate was skipped)."""
    if rules.near_duplicate_threshold is not None and len(order) <= _PAIRWISE_MAX:
        return _walk_pairwise(rules, order, categories, embeddings, k)
    return _walk_each(rules, order, categories, embeddings, k)


def _walk_each(rules: RerankConfig, order: np.ndarray, categories: np.ndarray,
               embeddings: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
    """`_walk` for a long `order`: similarities only against the (at most k) chosen items,
    one product per examined item."""
    cap, threshold = rules.category_cap, rules.near_duplicate_threshold
    chosen: list[int] = []
    per_cat: dict[int, int] = {}
    picked = np.empty((k, embeddings.shape[1]), dtype=embeddings.dtype)
    cats = categories.tolist()
    skipped = False
    for pick in order.tolist():
        if len(chosen) >= k:
            break
        c = int(cats[pick])
        if cap is not None and per_cat.get(c, 0) >= cap:
            continue
        if threshold is not None and chosen and \
                float((picked[: len(chosen)] @ embeddings[pick]).max()) >= threshold:
            skipped = True
            continue
        picked[len(chosen)] = embeddings[pick]
        chosen.append(pick)
        per_cat[c] = per_cat.get(c, 0) + 1
    return np.asarray(chosen, dtype=np.int64), skipped


# a walk over at most this many items (the usual head walk: cap x categories) takes every
# pairwise similarity in one BLAS product, instead of one product per examined item
_PAIRWISE_MAX = 160


def _walk_pairwise(rules: RerankConfig, order: np.ndarray, categories: np.ndarray,
                   embeddings: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
    """`_walk` with a near-duplicate threshold over a short `order`: the same walk, with each
    item's largest similarity to those chosen so far kept as a running maximum."""
    cap, threshold = rules.category_cap, rules.near_duplicate_threshold
    assert threshold is not None
    walked = embeddings[order]
    sims = walked @ walked.T  # (w, w): similarities of the walked items, in walk order
    closest = np.full(len(order), -np.inf, dtype=sims.dtype)
    chosen: list[int] = []
    per_cat: dict[int, int] = {}
    skipped = False
    for w, (pick, c) in enumerate(zip(order.tolist(), categories[order].tolist(),
                                      strict=True)):
        if len(chosen) >= k:
            break
        if cap is not None and per_cat.get(c, 0) >= cap:
            continue
        if closest[w] >= threshold:
            skipped = True
            continue
        chosen.append(pick)
        per_cat[c] = per_cat.get(c, 0) + 1
        np.maximum(closest, sims[w], out=closest)
    return np.asarray(chosen, dtype=np.int64), skipped
