"""The stochastic logging policy of the simulator, with exact propensities.

For a window with N candidate (live) articles and slate size S' = min(S, N), the logger
refreshes per-article weights w_i (popularity x freshness, see `logging_weights`) and sets the
inclusion probabilities

    pi_i = eps * S'/N + (1 - eps) * min(1, c * w_i),   c such that sum_i min(1, c * w_i) = S'

(`inclusion_probabilities`), so sum_i pi_i = S' and 0 < pi_i <= 1. Each request then draws its
set of S' distinct articles by *systematic sampling* (Madow): the candidates are laid out on a
line in a random order (fixed per window), article i owning an interval of length pi_i, and
the S' points u, u+1, ..., u+S'-1 with u ~ U(0, 1) pick the articles whose intervals they hit.
This design includes article i with probability exactly pi_i. The S' chosen articles are shown
in uniformly random order.

Hence the logged `propensities` entry of a shown article is pi_i, the exact MARGINAL
probability that the article is in the slate; and because the order is uniform,
P(article i shown at position k) = pi_i / S' for every k. (Joint inclusion probabilities are
not uniform-like: with a fixed layout some pairs never co-occur; estimators that need only
marginals, like item-level IPS, are exact.)
"""

from __future__ import annotations

import numpy as np

from newsdesk.errors import InvalidInput


def capped_proportional(weights: np.ndarray, total: int) -> np.ndarray:
    """pi_i = min(1, c * w_i) with c chosen so that sum(pi) == total (total <= #positive w)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise InvalidInput("weights: expected a 1-D array of finite values >= 0", field="weights")
    if total > np.count_nonzero(w):
        raise InvalidInput(f"weights: need at least {total} positive weights, got "
                           f"{np.count_nonzero(w)}", field="weights")
    pi = np.zeros_like(w)
    capped = np.zeros(w.shape, dtype=bool)
    # Iterate: items whose share would exceed 1 are fixed at 1 and the rest rescaled; at most
    # `total` rounds since each round caps at least one more item.
    for _ in range(total + 1):
        free = ~capped
        remaining = total - np.count_nonzero(capped)
        pi[free] = w[free] * (remaining / w[free].sum())
        over = free & (pi >= 1.0)
        if not over.any():
            break
        capped |= over
        pi[capped] = 1.0
    return pi


def inclusion_probabilities(weights: np.ndarray, slate_size: int, epsilon: float) -> np.ndarray:
    """The logger's per-article inclusion probabilities (see module doc); sums to min(S, N)."""
    n = int(np.asarray(weights).shape[0])
    s = min(slate_size, n)
    if s == 0:
        return np.zeros(0)
    if s == n:
        return np.ones(n)
    uniform = np.full(n, s / n)
    w = np.asarray(weights, dtype=np.float64)
    if np.count_nonzero(w) < s:  # degenerate weights: fall back to the uniform part only
        return uniform
    return epsilon * uniform + (1.0 - epsilon) * capped_proportional(w, s)


def systematic_sample(
    pi: np.ndarray, n_requests: int, rng: np.random.Generator, layout: np.ndarray | None = None,
) -> np.ndarray:
    """(n_requests, S') candidate indices; row r holds distinct items, in random order.

    pi sums to the integer S' (each <= 1); item i is in a row with probability pi_i exactly.
    `layout` is the order of items on the line (a permutation; random if None).
    """
    n = pi.shape[0]
    s = int(round(float(pi.sum())))
    if n == 0 or s == 0 or n_requests == 0:
        return np.zeros((n_requests, 0), dtype=np.int64)
    if layout is None:
        layout = rng.permutation(n)
    cum = np.cumsum(pi[layout])
    cum *= s / cum[-1]  # remove float drift so the last boundary is exactly S'
    u = rng.random(n_requests)
    by_u = np.argsort(u, kind="stable")
    # With u sorted, the points (j + u_sorted) for j = 0..S'-1 form ONE increasing sequence,
    # which makes searchsorted cache-friendly (3-5x faster than unsorted (R, S') queries).
    points = (np.arange(s)[:, None] + u[by_u][None, :]).ravel()
    slot = np.minimum(np.searchsorted(cum, points, side="right"), n - 1).reshape(s, n_requests)
    chosen = np.empty((n_requests, s), dtype=np.int64)
    chosen[by_u] = layout[slot].T
    # uniformly random display order within each slate
    order = np.argsort(rng.random((n_requests, s)), axis=1)
    return np.take_along_axis(chosen, order, axis=1)


def logging_weights(
    age_seconds: np.ndarray, popularity: np.ndarray, *, policy_half_life_s: float,
    popularity_power: float,
) -> np.ndarray:
    """w_i = (1 + popularity_i) ** power * 2 ** (-age_i / policy_half_life): what the logger
    believes is good; popularity = recent decayed click count, age in seconds."""
    return (1.0 + popularity) ** popularity_power * np.exp2(
        -np.maximum(age_seconds, 0.0) / policy_half_life_s)
