"""The ONNX fast path agrees with the sentence-transformers reference on the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from newsdesk.content.embedder import Embedder, article_text
from tests.content.texts import FINANCE, FOOTBALL, GERMAN_FINANCE, GERMAN_FOOTBALL, MIXED

pytestmark = pytest.mark.ml


def test_fp32_export_matches_reference(st_embedder: Embedder, fp32_embedder: Embedder) -> None:
    ref = st_embedder.embed(MIXED)
    got = fp32_embedder.embed(MIXED)
    assert got.shape == ref.shape and got.dtype == np.float32
    cosine = np.sum(ref * got, axis=1)
    assert cosine.min() > 0.9999, cosine  # same graph: only float rounding differs


def test_int8_agrees_with_reference_per_text(
    st_embedder: Embedder, int8_embedder: Embedder
) -> None:
    ref = st_embedder.embed(MIXED)
    got = int8_embedder.embed(MIXED)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = dict(zip(MIXED, np.sum(ref * got, axis=1).round(4), strict=True))
    # the empty text ([CLS][SEP] only) is the hardest case for int8; no article has it
    assert cosine.pop("") > 0.96
    assert min(cosine.values()) > 0.98, cosine
    assert int8_embedder.name == "all-MiniLM-L6-v2:onnx-int8"


@pytest.mark.shared_data
def test_int8_agrees_on_real_mind_articles(st_embedder: Embedder, int8_embedder: Embedder) -> None:
    news = (
        Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mind-sample" / "news.tsv"
    )
    if not news.is_file():
        pytest.skip(f"shared data not present: {news}")
    with news.open(encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t") for _, line in zip(range(96), fh, strict=False)]
    texts = [article_text(r[3], r[4] or None) for r in rows]
    cosine = np.sum(st_embedder.embed(texts) * int8_embedder.embed(texts), axis=1)
    assert cosine.min() > 0.98, texts[int(cosine.argmin())]


def test_int8_keeps_topics_apart(int8_embedder: Embedder) -> None:
    for same, other in ((FOOTBALL, FINANCE), (GERMAN_FOOTBALL, GERMAN_FINANCE)):
        a, b, c = int8_embedder.embed([*same, other])
        assert a @ b > a @ c + 0.2


def test_int8_is_deterministic_and_nearly_batch_independent(int8_embedder: Embedder) -> None:
    first = int8_embedder.embed(MIXED)
    np.testing.assert_array_equal(first, int8_embedder.embed(MIXED))
    # dynamic quantisation scales activations per batch, so batch-mates matter a little
    alone = int8_embedder.embed([MIXED[0]])[0]
    assert float(alone @ first[0]) > 0.99


def test_export_is_cached_and_reused(onnx_cache_dir: Path, int8_embedder: Embedder) -> None:
    from newsdesk.content.onnx_embedder import OnnxEmbedder

    path = int8_embedder.onnx_path  # type: ignore[attr-defined]
    assert path.is_file() and onnx_cache_dir in path.parents
    stamp = path.stat().st_mtime_ns
    again = OnnxEmbedder(quantize=True, cache_dir=onnx_cache_dir)
    assert again.onnx_path == path and path.stat().st_mtime_ns == stamp
    # int8 was quantised from the cached float export (traced once), both are kept
    assert len(list((onnx_cache_dir / "onnx").glob("*-fp32/model.onnx"))) == 1
    # no leftover temp export directories
    assert not list((onnx_cache_dir / "onnx").glob("*/.export-*"))
    # int8 file is about a quarter of the float weights (MatMuls) + the float embedding table
    assert path.stat().st_size < 70_000_000


def test_factory_builds_the_cached_int8_path(onnx_cache_dir: Path, int8_embedder: Embedder) -> None:
    from newsdesk.content import CachedEmbedder, make_embedder

    embedder = make_embedder("minilm-int8", cache_dir=onnx_cache_dir)
    assert isinstance(embedder, CachedEmbedder)
    assert embedder.name == int8_embedder.name and embedder.dim == 384
    vectors = embedder.embed(MIXED[:4])
    np.testing.assert_array_equal(embedder.embed(MIXED[:4]), vectors)
    assert embedder.misses == 4 and embedder.hits == 4
    assert (onnx_cache_dir / "embeddings.sqlite").is_file()
    embedder.cache.close()
