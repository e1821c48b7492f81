"""Compiled trees (lleaves): the same scores as the plain LightGBM Booster, a disk cache keyed by
the model, and the plain Booster as the fallback when compilation is impossible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from newsdesk.content import Embedder
from newsdesk.errors import BundleError, ConfigError
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.ranking_features import FEATURE_NAMES
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import RANKER_FILE, load_recommender, read_manifest
from newsdesk.models.compiled_ranker import CompiledRanker, cache_key, load_ranker
from newsdesk.models.ranker import LambdaRanker

pytest.importorskip("lleaves")


def _features(bundle_dir: Path, embedder: Embedder) -> np.ndarray:
    """Realistic rows (the online feature path for a few users) plus rows with NaN and
    extreme values in every column, which send the trees down their missing/edge branches."""
    store = MemoryOnlineStore(half_life_hours=6.0)
    rec = load_recommender(bundle_dir, store, embedder=embedder, ranker="lightgbm")
    cat = rec.ws.catalog
    now = float(cat.published[: cat.size].max())
    ids = cat.ids[: min(cat.size, 300)]
    x = [rec.features(RequestContext(user_id=f"u{i}", now=now), ids) for i in range(3)]
    rng = np.random.default_rng(0)
    odd = rng.normal(0, 50, (200, len(FEATURE_NAMES))).astype(np.float32)
    odd[rng.random(odd.shape) < 0.3] = np.nan
    return np.concatenate([*x, odd])


def test_compiled_scores_agree_with_lightgbm(bundle_dir: Path, embedder: Embedder,
                                             tmp_path: Path) -> None:
    x = _features(bundle_dir, embedder)
    plain = load_ranker(bundle_dir / RANKER_FILE, FEATURE_NAMES, mode="lightgbm")
    compiled = load_ranker(bundle_dir / RANKER_FILE, FEATURE_NAMES, mode="compiled",
                           cache_dir=tmp_path)
    assert type(plain) is LambdaRanker and isinstance(compiled, CompiledRanker)
    want, got = plain.predict(x), compiled.predict(x)
    assert got.dtype == np.float64 and got.shape == (len(x),)
    assert np.isnan(x).any() and np.ptp(want) > 0  # the rows exercise the trees
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert compiled.predict(x[:0]).shape == (0,)
    # one row at a time (the batch boundaries of the compiled code) gives the same
    np.testing.assert_allclose([compiled.predict(x[i: i + 1])[0] for i in range(5)], want[:5],
                               rtol=0, atol=1e-6)


def test_compiled_code_is_cached_by_model_and_reused(bundle_dir: Path, tmp_path: Path) -> None:
    model = bundle_dir / RANKER_FILE
    first = load_ranker(model, FEATURE_NAMES, mode="compiled", cache_dir=tmp_path)
    assert isinstance(first, CompiledRanker) and first.cache_file is not None
    assert first.cache_file == tmp_path / f"ranker-{cache_key(model)}.o"
    assert first.cache_file.stat().st_size > 0
    stamp = first.cache_file.stat().st_mtime_ns

    assert first.compiled_here
    second = load_ranker(model, FEATURE_NAMES, mode="compiled", cache_dir=tmp_path)
    assert isinstance(second, CompiledRanker) and not second.compiled_here
    assert second.cache_file == first.cache_file
    assert first.cache_file.stat().st_mtime_ns == stamp  # loaded, not rewritten
    x = np.random.default_rng(1).normal(0, 1, (50, len(FEATURE_NAMES))).astype(np.float32)
    np.testing.assert_array_equal(first.predict(x), second.predict(x))
    # another model text gets another key
    other = tmp_path / "other.txt"
    other.write_text(model.read_text() + "\n")
    assert cache_key(other) != cache_key(model)


def test_unwritable_cache_compiles_in_memory(bundle_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    ranker = load_ranker(bundle_dir / RANKER_FILE, FEATURE_NAMES, mode="compiled",
                         cache_dir=blocker / "cache")
    assert isinstance(ranker, CompiledRanker) and ranker.cache_file is None


def test_auto_falls_back_to_lightgbm_when_compilation_fails(bundle_dir: Path,
                                                            tmp_path: Path) -> None:
    def broken(path: Path, cache_dir: Path | None) -> Any:
        raise RuntimeError("LLVM said no")

    model = bundle_dir / RANKER_FILE
    auto = load_ranker(model, FEATURE_NAMES, mode="auto", cache_dir=tmp_path, compiler=broken)
    assert type(auto) is LambdaRanker
    x = np.zeros((3, len(FEATURE_NAMES)), np.float32)
    assert auto.predict(x).shape == (3,)
    with pytest.raises(BundleError, match="cannot compile the ranker.*LLVM said no"):
        load_ranker(model, FEATURE_NAMES, mode="compiled", cache_dir=tmp_path, compiler=broken)
    with pytest.raises(ConfigError, match="ranker: must be one of"):
        load_ranker(model, FEATURE_NAMES, mode="fast")


def test_bundle_loads_compiled_by_default_beside_the_bundles(bundle_dir: Path,
                                                             embedder: Embedder) -> None:
    store = MemoryOnlineStore(half_life_hours=6.0)
    rec = load_recommender(bundle_dir, store, embedder=embedder)
    assert isinstance(rec.ranker, CompiledRanker)
    assert rec.ranker.cache_file is not None
    assert rec.ranker.cache_file.parent == bundle_dir.parent / ".compiled-trees"
    # the cache is not inside the bundle, so the bundle's file hashes still verify
    assert not any(p.name.endswith(".o") for p in bundle_dir.rglob("*"))
    assert read_manifest(bundle_dir)["version"] == rec.version
    plain = load_recommender(bundle_dir, store, embedder=embedder, ranker="lightgbm")
    assert type(plain.ranker) is LambdaRanker


def test_serving_settings_choose_the_ranker(bundle_dir: Path, tmp_path: Path) -> None:
    """NEWSDESK_RANKER / NEWSDESK_COMPILED_RANKER_CACHE_DIR reach the server's bundle loader;
    a bad value is refused at start, naming the field."""
    from newsdesk.serving.app import default_recommender_factory
    from newsdesk.serving.settings import load_settings

    with pytest.raises(ConfigError, match="ranker"):
        load_settings(bundles_dir=bundle_dir.parent, ranker="fast")
    store = MemoryOnlineStore(half_life_hours=6.0)
    version = read_manifest(bundle_dir)["version"]
    plain = default_recommender_factory(load_settings(
        bundles_dir=bundle_dir.parent, ranker="lightgbm"))(version, store)
    assert type(plain.ranker) is LambdaRanker  # type: ignore[attr-defined]
    cache = tmp_path / "trees"
    compiled = default_recommender_factory(load_settings(
        bundles_dir=bundle_dir.parent, compiled_ranker_cache_dir=cache))(version, store)
    assert isinstance(compiled.ranker, CompiledRanker)  # type: ignore[attr-defined]
    assert compiled.ranker.cache_file is not None  # type: ignore[attr-defined]
    assert compiled.ranker.cache_file.parent == cache  # type: ignore[attr-defined]


def _load_in_process(model: str, cache: str) -> bool:
    ranker = load_ranker(Path(model), FEATURE_NAMES, mode="compiled", cache_dir=Path(cache))
    return bool(ranker.compiled_here)  # type: ignore[attr-defined]


def test_worker_processes_compile_once(bundle_dir: Path, tmp_path: Path) -> None:
    """Workers loading one bundle at the same time: one compiles, the others wait for its
    file and load it (a file lock), so N workers do not compile N times."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        compiled = pool.starmap(_load_in_process,
                                [(str(bundle_dir / RANKER_FILE), str(tmp_path))] * 3)
    assert sorted(compiled) == [False, False, True]
    assert len(list(tmp_path.glob("ranker-*.o"))) == 1
    assert not list(tmp_path.glob(".ranker-*"))  # no half-written file left behind
