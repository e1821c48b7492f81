"""The text-embedding contract: articles in, L2-normalised float32 vectors out.

Implementations live beside this file (a sentence-transformers model by default, an ONNX int8
model as the fast path); a multilingual model plugs in the same way. Callers never depend on
which one is used, only on `dim` and `name` (which the model bundle records, so a bundle refuses
to load with a different embedder).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Embedder(ABC):
    name: str  # identifies model + version; stored in bundles and cache keys
    dim: int
    short_name: str | None = None  # the make_embedder name it was built by (bundles record it)

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns shape (len(texts), dim), float32, rows of unit L2 norm."""


def article_text(title: str, abstract: str | None = None) -> str:
    """The text of an article that gets embedded (title, then abstract)."""
    return f"{title}. {abstract}" if abstract else title
