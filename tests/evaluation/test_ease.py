"""EASE closed form on a tiny matrix worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from newsdesk.models.ease import EASE


def test_ease_matches_the_hand_computed_solution() -> None:
    # X^T X + I = [[2,1,0],[1,3,1],[0,1,2]], inverse = 1/8 [[5,-2,1],[-2,4,-2],[1,-2,5]]
    X = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=float))
    model = EASE(l2=1.0).fit(X)
    expected = np.array([[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]])
    np.testing.assert_allclose(model.B_, expected, atol=1e-12)
    np.testing.assert_allclose(model.scores(X[0]), [[0.4, 0.5, 0.2]], atol=1e-12)


def test_ease_rejects_a_nonpositive_l2() -> None:
    with pytest.raises(ValueError, match="l2"):
        EASE(l2=0.0).fit(np.eye(2))
