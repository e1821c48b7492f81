"""A dependency-free embedder: hashed word unigrams and bigrams, L2-normalised.

No model and no torch: for unit tests of code that only needs *some* deterministic Embedder,
and for installs without the [ml] extra. Texts sharing words are closer than texts that do not;
there is no semantics beyond that (use the sentence-transformers or ONNX embedders for that).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from newsdesk.content.embedder import Embedder
from newsdesk.content.sentence_transformer import check_texts
from newsdesk.errors import ConfigError

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder(Embedder):
    """Feature hashing of lower-cased words and word bigrams into `dim` signed buckets."""

    def __init__(self, dim: int = 256, seed: int = 0) -> None:
        if dim < 2:
            raise ConfigError(f"dim: must be >= 2, got {dim}")
        self.dim = dim
        self.seed = seed
        self.name = f"hashing:d{dim}:s{seed}"

    def _vector(self, text: str) -> np.ndarray:
        words = _WORD.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        vec = np.zeros(self.dim, dtype=np.float32)
        for feature in features:
            digest = hashlib.blake2b(
                feature.encode("utf-8"), digest_size=8, salt=self.seed.to_bytes(8, "little")
            ).digest()
            h = int.from_bytes(digest, "little")
            vec[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0  # empty text: a fixed unit vector keeps the unit-norm contract
            return vec
        return vec / norm

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts -> (len(texts), dim) float32 unit rows."""
        items = check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in items]).astype(np.float32, copy=False)
