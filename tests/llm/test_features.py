"""Enrichment overlap features: cosine of candidate terms with the reader's clicked terms."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from newsdesk.llm.features import EnrichmentTerms


@pytest.fixture
def terms():
    enrichment = pl.DataFrame({
        "article_id": ["a", "b", "c"],
        "entities": [["Bayern Munich"], ["Bayern Munich"], []],
        "keywords": [["transfer"], ["injury"], ["bayern munich"]],  # a keyword, not an entity
        "topics": [["football"], ["football"], ["cooking"]],
    })
    return EnrichmentTerms.build(["a", "b", "c", "d"], enrichment)


def test_overlap_is_cosine_of_term_sets_and_zero_when_unknown(terms):
    click_idx = np.array([[0, -1], [-1, -1]])  # reader 0 clicked "a"; reader 1 nothing
    rows_q = np.array([0, 0, 0, 0, 1, 0])
    rows_a = np.array([0, 1, 2, 3, 1, -1])
    got = terms.overlap(click_idx, rows_q, rows_a)
    assert got[0] == pytest.approx(1.0)  # the clicked article itself
    assert got[1] == pytest.approx(2 / 3)  # shares entity + topic of 3 terms each
    assert got[2] == pytest.approx(0.0)  # "bayern munich" as keyword != entity
    assert got[3] == 0.0 and got[4] == 0.0 and got[5] == 0.0  # no enrichment / no history
    assert terms.has_enrichment.tolist() == [True, True, True, False]


def test_overlap_bounds_on_random_histories(terms):
    rng = np.random.default_rng(0)
    click_idx = rng.integers(-1, 4, size=(20, 5))
    rows_q = rng.integers(0, 20, size=200)
    rows_a = rng.integers(-1, 4, size=200)
    got = terms.overlap(click_idx, rows_q, rows_a)
    assert got.shape == (200,) and np.all(got >= -1e-6) and np.all(got <= 1 + 1e-6)


def test_one_reader_path_equals_the_batched_one(terms):
    # serving (one reader) takes a dense shortcut; training (many) the sparse product
    rng = np.random.default_rng(1)
    for _ in range(20):
        clicks = rng.integers(-1, 4, size=(1, 6))
        rows_a = rng.integers(-1, 4, size=30)
        one = terms.overlap(clicks, np.zeros(30, dtype=np.int64), rows_a)
        two = terms.overlap(np.vstack([clicks, rng.integers(-1, 4, size=(1, 6))]),
                            np.zeros(30, dtype=np.int64), rows_a)
        assert one == pytest.approx(two, abs=1e-6)
