"""Embedding cache: an article is embedded once, across calls and across process restarts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.content import (
    CachedEmbedder,
    InMemoryEmbeddingCache,
    SqliteEmbeddingCache,
    cache_key,
    make_embedder,
)
from newsdesk.content.embedder import Embedder
from newsdesk.content.hashing import HashingEmbedder
from newsdesk.errors import ConfigError
from tests.content.texts import MIXED


class CountingHashingEmbedder(HashingEmbedder):
    """The real hashing embedder, counting the texts it is asked to embed."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__(dim=dim)
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed(texts)


def test_second_call_embeds_nothing_and_returns_the_same_vectors() -> None:
    inner = CountingHashingEmbedder()
    cached = CachedEmbedder(inner, InMemoryEmbeddingCache())
    first = cached.embed(MIXED)
    assert inner.embedded == len(set(MIXED))
    second = cached.embed(list(reversed(MIXED)))
    assert inner.embedded == len(set(MIXED))  # nothing new was embedded
    np.testing.assert_array_equal(second, first[::-1])
    assert cached.misses == len(set(MIXED)) and cached.hits == 2 * len(MIXED) - cached.misses
    assert cached.name == inner.name and cached.dim == inner.dim


def test_only_misses_are_embedded() -> None:
    inner = CountingHashingEmbedder()
    cached = CachedEmbedder(inner, InMemoryEmbeddingCache())
    cached.embed(["a", "b"])
    cached.embed(["b", "c", "c", "d"])
    assert inner.embedded == 4  # a, b, then c and d once each
    assert cached.hit_rate == pytest.approx(2 / 6)


def test_sqlite_cache_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "embeddings.sqlite"
    inner = CountingHashingEmbedder()
    cache = SqliteEmbeddingCache(path)
    expected = CachedEmbedder(inner, cache).embed(MIXED)
    cache.close()

    restarted = CountingHashingEmbedder()
    cache = SqliteEmbeddingCache(path)
    assert len(cache) == len(set(MIXED))
    got = CachedEmbedder(restarted, cache).embed(MIXED)
    assert restarted.embedded == 0
    np.testing.assert_array_equal(got, expected)
    cache.close()


def test_keys_separate_embedders_and_texts() -> None:
    assert cache_key("a", "text") != cache_key("b", "text")
    assert cache_key("a", "text") != cache_key("a", "text ")
    shared = InMemoryEmbeddingCache()
    small, big = CountingHashingEmbedder(dim=16), CountingHashingEmbedder(dim=32)
    CachedEmbedder(small, shared).embed(["x"])
    assert CachedEmbedder(big, shared).embed(["x"]).shape == (1, 32)
    assert big.embedded == 1  # another embedder's vector is never served


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "b c", "Storm hits", "ä ö ü", "x y z"]), max_size=12))
def test_cached_output_equals_direct_embedding(texts: list[str]) -> None:
    inner = HashingEmbedder(dim=32)
    cached = CachedEmbedder(inner, InMemoryEmbeddingCache())
    cached.embed(texts[: len(texts) // 2])  # warm part of the cache
    np.testing.assert_array_equal(cached.embed(texts), inner.embed(texts).reshape(-1, 32))


def test_factory_names(tmp_path: Path) -> None:
    embedder = make_embedder("hashing", cache_dir=tmp_path)
    assert isinstance(embedder, CachedEmbedder)
    assert (tmp_path / "embeddings.sqlite").is_file()
    assert isinstance(make_embedder("hashing"), HashingEmbedder)
    with pytest.raises(ConfigError, match="unknown name 'bert'"):
        make_embedder("bert")
    with pytest.raises(ConfigError, match="model_path"):
        make_embedder(f"minilm:{tmp_path / 'no-model'}")


def test_hashing_embedder_contract() -> None:
    embedder = HashingEmbedder(dim=64)
    vectors = embedder.embed(["storm hits the coast", "storm hits the city", "bank rates"])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.ml
def test_cache_with_the_real_model(st_embedder: Embedder, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from newsdesk.content.sentence_transformer import SentenceTransformerEmbedder

    class CountingMiniLM(SentenceTransformerEmbedder):
        embedded = 0

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            self.embedded += len(texts)
            return super().embed(texts)

    counting = CountingMiniLM()
    cache = SqliteEmbeddingCache(tmp_path / "e.sqlite")
    cached = CachedEmbedder(counting, cache)
    first = cached.embed(MIXED[:5])
    assert counting.embedded == 5
    again = cached.embed(MIXED[:5])
    assert counting.embedded == 5
    np.testing.assert_array_equal(again, first)
    np.testing.assert_allclose(first, st_embedder.embed(MIXED[:5]), atol=1e-5)
    cache.close()
