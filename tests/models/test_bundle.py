"""Model bundles: round trip, versions, corrupt / mismatched bundles, `newsdesk train` CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from newsdesk.content import Embedder
from newsdesk.content.hashing import HashingEmbedder
from newsdesk.errors import BundleError, ConfigError
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.ranking_features import FEATURE_NAMES
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import list_bundles, load_recommender, read_manifest, resolve_bundle
from newsdesk.models.catalog import ArticleCatalog
from newsdesk.pipelines.train import TrainConfig

VERSION = re.compile(r"^v\d{8}-\d{6}-[0-9a-f]{6}$")


def _store() -> MemoryOnlineStore:
    store = MemoryOnlineStore(half_life_hours=6.0)
    store.record_impressions(["a100", "a101", "a102"], 1767600000.0)
    store.record_clicks("u1", ["a100", "a5"], 1767600100.0)
    return store


def _scores(bundle: Path, embedder: Embedder) -> np.ndarray:
    rec = load_recommender(bundle, _store(), embedder=embedder)
    ctx = RequestContext(user_id="u1", now=1767601000.0)
    return rec.score(ctx, ["a100", "a101", "a102", "a50", "not-an-article"])


def test_manifest_has_schema_snapshot_and_metrics(bundle_dir: Path) -> None:
    m = read_manifest(bundle_dir)
    assert VERSION.match(m["version"]) and m["version"] == bundle_dir.name
    assert m["feature_schema"] == list(FEATURE_NAMES)
    assert m["data"]["rows"]["impressions"] == 12000 and len(m["data"]["hash"]) == 16
    assert m["code"]["newsdesk"]
    assert m["embedder"]["dim"] == 384
    # the fixture passes a sentence-transformers embedder with a config naming none (the
    # default, int8): the bundle records the one it was trained with, so serving rebuilds it
    assert TrainConfig().embedder == "minilm-int8"
    assert m["embedder"]["short_name"] == m["config"]["embedder"] == "minilm"
    assert 0.5 < m["metrics"]["valid"]["auc"] <= 1.0
    assert "ranker.txt" in m["files"] and "catalog/embeddings.npy" in m["files"]
    assert not any(p.suffix in (".pkl", ".pickle") for p in bundle_dir.rglob("*"))


def test_round_trip_gives_identical_scores(bundle_dir: Path, embedder: Embedder,
                                           tmp_path: Path) -> None:
    copy = tmp_path / "bundles" / bundle_dir.name
    shutil.copytree(bundle_dir, copy)
    a, b = _scores(bundle_dir, embedder), _scores(copy, embedder)
    assert a.shape == (5,) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    cat = ArticleCatalog.load(copy / "catalog")
    cat.save(tmp_path / "cat2")
    again = ArticleCatalog.load(tmp_path / "cat2")
    assert again.ids == cat.ids
    np.testing.assert_array_equal(again.embeddings[: again.size], cat.embeddings[: cat.size])


def test_list_and_resolve(bundle_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundles"
    older = root / "v20200101-000000-aaaaaa"
    shutil.copytree(bundle_dir, older)
    m = json.loads((older / "manifest.json").read_text())
    m["version"], m["created_at"] = older.name, "2020-01-01T00:00:00+00:00"
    (older / "manifest.json").write_text(json.dumps(m))
    shutil.copytree(bundle_dir, root / bundle_dir.name)
    (root / "not-a-bundle").mkdir()
    infos = list_bundles(root)
    assert [b.version for b in infos] == [older.name, bundle_dir.name]
    assert resolve_bundle(root) == root / bundle_dir.name
    assert resolve_bundle(root, older.name) == older
    with pytest.raises(BundleError, match="no bundle with version"):
        resolve_bundle(root, "v1")
    with pytest.raises(BundleError, match="no model bundles"):
        resolve_bundle(tmp_path / "empty")


@pytest.mark.parametrize("damage, message", [
    ("truncate_ranker", "ranker.txt is corrupt"),
    ("delete_embeddings", "catalog/embeddings.npy is missing"),
    ("feature_schema", "feature schema"),
    ("format", "format"),
    ("no_manifest", "not a model bundle"),
])
def test_damaged_bundle_raises_bundle_error(bundle_dir: Path, embedder: Embedder,
                                            tmp_path: Path, damage: str, message: str) -> None:
    b = tmp_path / bundle_dir.name
    shutil.copytree(bundle_dir, b)
    manifest = json.loads((b / "manifest.json").read_text())
    if damage == "truncate_ranker":
        text = (b / "ranker.txt").read_text()
        (b / "ranker.txt").write_text(text[: len(text) // 2])
    elif damage == "delete_embeddings":
        (b / "catalog" / "embeddings.npy").unlink()
    elif damage == "feature_schema":
        manifest["feature_schema"] = manifest["feature_schema"][:-1]
    elif damage == "format":
        manifest["format"] = "newsdesk-bundle/0"
    elif damage == "no_manifest":
        (b / "manifest.json").unlink()
    if (b / "manifest.json").exists():
        (b / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=re.escape(message)):
        load_recommender(b, _store(), embedder=embedder)


def test_mismatched_embedder_and_store_raise(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match="embedder mismatch"):
        load_recommender(bundle_dir, _store(), embedder=HashingEmbedder(dim=384))
    with pytest.raises(BundleError, match="half_life_hours"):
        load_recommender(bundle_dir, MemoryOnlineStore(half_life_hours=2.0))


def test_train_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ranker:\n  num_leaves: 1\n")
    with pytest.raises(ConfigError, match=r"ranker\.num_leaves"):
        TrainConfig.from_yaml(bad)
    bad.write_text("candidates:\n  trendy: 3\n")
    with pytest.raises(ConfigError, match=r"candidates\.trendy"):
        TrainConfig.from_yaml(bad)


def test_train_cli_prints_a_version(sim_dataset: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text("embedder: hashing\nranker:\n  num_boost_round: 20\n"
                   "serving:\n  surfaces:\n    newsletter:\n      category_cap: 2\n")
    out = tmp_path / "bundles"
    cmd = [sys.executable, "-m", "newsdesk.cli.main", "train", str(sim_dataset),
           "--out", str(out), "--config", str(cfg)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    version = done.stdout.strip().splitlines()[-1]
    assert VERSION.match(version)
    assert resolve_bundle(out) == out / version
    m = read_manifest(out / version)
    assert m["config"]["serving"]["surfaces"]["newsletter"]["category_cap"] == 2
    rec = load_recommender(out / version, MemoryOnlineStore(half_life_hours=6.0))
    assert rec.serving.for_surface("newsletter").category_cap == 2

    cfg.write_text("features:\n  half_life_hours: -1\n")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "features.half_life_hours" in done.stderr
