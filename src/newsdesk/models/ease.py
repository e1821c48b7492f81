"""EASE: embarrassingly shallow autoencoder (Steck, 2019), closed form with numpy.

    G = X^T X + lambda * I          item-item Gram matrix, regularised diagonal
    P = G^-1
    B = I - P / diag(P)             column j divided by P_jj, so diag(B) = 0
    scores(u) = X_u B

X is the binary user x item interaction matrix. Cost: one dense n_items^2 inverse, fine for
catalogs up to a few tens of thousands of items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class EASE:
    """Item-item linear autoencoder with a zero diagonal."""

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    def fit(self, X: sp.spmatrix | np.ndarray) -> EASE:
        """Learn `B_` (n_items x n_items) from X (n_users x n_items, nonnegative weights)."""
        if self.l2 <= 0:
            raise ValueError(f"l2 must be positive; got {self.l2}")
        Xs = sp.csr_matrix(X, dtype=np.float64)
        G = (Xs.T @ Xs).toarray()
        G[np.diag_indices_from(G)] += self.l2
        P = np.linalg.inv(G)
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices_from(B)] = 0.0
        self.B_ = B
        return self

    def scores(self, X_users: sp.spmatrix | np.ndarray) -> np.ndarray:
        """Scores of every item for the given user rows, shape (n_rows, n_items)."""
        Xs = sp.csr_matrix(X_users, dtype=np.float64)
        return np.asarray(Xs @ self.B_)
