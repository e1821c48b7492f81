"""Text embeddings of articles.

    embedder.py              the Embedder contract and `article_text(title, abstract)`
    sentence_transformer.py  reference embedder (sentence-transformers, all-MiniLM-L6-v2)
    onnx_embedder.py         the same model exported to ONNX, float32 or int8 (fast path)
    hashing.py               dependency-free hashed bag of words (tests, no-ml installs)
    cache.py                 embedding cache by content hash + CachedEmbedder

`make_embedder(name)` picks one by short name; torch/onnxruntime are imported only then.
"""

from __future__ import annotations

from pathlib import Path

from newsdesk.content.cache import (
    CachedEmbedder,
    EmbeddingCache,
    InMemoryEmbeddingCache,
    SqliteEmbeddingCache,
    cache_key,
)
from newsdesk.content.embedder import Embedder, article_text
from newsdesk.errors import ConfigError

EMBEDDER_NAMES = ("minilm", "minilm-onnx", "minilm-int8", "hashing")
CACHE_FILE = "embeddings.sqlite"

__all__ = [
    "EMBEDDER_NAMES",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingCache",
    "InMemoryEmbeddingCache",
    "SqliteEmbeddingCache",
    "article_text",
    "cache_key",
    "make_embedder",
]


def _build(kind: str, model_path: str | None, cache_dir: Path | None) -> Embedder:
    if kind == "minilm":
        from newsdesk.content.sentence_transformer import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model_path)
    if kind in ("minilm-onnx", "minilm-int8"):
        from newsdesk.content.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(model_path, quantize=kind == "minilm-int8", cache_dir=cache_dir)
    if kind == "hashing":
        from newsdesk.content.hashing import HashingEmbedder

        return HashingEmbedder()
    raise ConfigError(
        f"embedder: unknown name '{kind}'; choose one of {', '.join(EMBEDDER_NAMES)}, "
        "optionally followed by ':<local model folder>' (e.g. 'minilm:/models/multilingual')"
    )


def make_embedder(name: str = "minilm", cache_dir: Path | None = None) -> Embedder:
    """An embedder by short name.

    names: "minilm" (sentence-transformers, reference), "minilm-onnx" (ONNX float32),
    "minilm-int8" (ONNX int8, fastest), "hashing" (no model). "NAME:/path/to/model" uses another
    local sentence-transformers model folder (e.g. a multilingual one) with the same runtime.
    With `cache_dir`, vectors are cached in `cache_dir/embeddings.sqlite` (and ONNX exports
    under `cache_dir/onnx/`), so a text is embedded once across runs.
    """
    kind, _, model_path = name.partition(":")
    root = Path(cache_dir) if cache_dir is not None else None
    embedder = _build(kind.strip().lower(), model_path or None, root)
    if root is not None:
        embedder = CachedEmbedder(embedder, SqliteEmbeddingCache(root / CACHE_FILE))
    # the name it was made by: a bundle trained with it records this, so serving builds the same
    embedder.short_name = name
    return embedder
