"""The reference embedder on the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

import numpy as np
import pytest

from newsdesk.content.embedder import Embedder, article_text
from newsdesk.errors import InvalidInput
from tests.content.texts import FINANCE, FOOTBALL, GERMAN_FINANCE, GERMAN_FOOTBALL, MIXED

pytestmark = pytest.mark.ml


def test_shape_dtype_and_unit_norm(st_embedder: Embedder) -> None:
    vectors = st_embedder.embed(MIXED)
    assert vectors.shape == (len(MIXED), 384) == (len(MIXED), st_embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert st_embedder.name == "all-MiniLM-L6-v2:st"


def test_same_topic_is_closer_than_other_topic(st_embedder: Embedder) -> None:
    a, b, c = st_embedder.embed([*FOOTBALL, FINANCE])
    assert a @ b > a @ c + 0.2
    assert a @ b > b @ c + 0.2


def test_german_text_works(st_embedder: Embedder) -> None:
    a, b, c = st_embedder.embed([*GERMAN_FOOTBALL, GERMAN_FINANCE])
    assert np.isfinite([a, b, c]).all()
    assert a @ b > a @ c + 0.2
    assert a @ b > b @ c + 0.2


def test_deterministic_and_independent_of_batch(st_embedder: Embedder) -> None:
    first = st_embedder.embed(MIXED)
    np.testing.assert_array_equal(first, st_embedder.embed(MIXED))
    alone = st_embedder.embed([MIXED[3]])
    np.testing.assert_allclose(alone[0], first[3], atol=1e-5)


def test_article_text_is_what_gets_embedded(st_embedder: Embedder) -> None:
    text = article_text("Storm hits coast", "Thousands without power.")
    assert text == "Storm hits coast. Thousands without power."
    assert article_text("Storm hits coast") == "Storm hits coast"
    v_title, v_full = st_embedder.embed([article_text("Storm hits coast"), text])
    assert 0.5 < float(v_title @ v_full) < 0.9999


def test_empty_batch_and_bad_input(st_embedder: Embedder) -> None:
    assert st_embedder.embed([]).shape == (0, 384)
    with pytest.raises(InvalidInput, match="texts"):
        st_embedder.embed("one string, not a list")
    with pytest.raises(InvalidInput, match=r"texts\[1\]"):
        st_embedder.embed(["ok", 3])  # type: ignore[list-item]
