"""VectorIndex: exact search equals brute force, removals are final, save/load, concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.errors import BundleError, InvalidInput
from newsdesk.models.ann import VectorIndex


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(store: dict[str, np.ndarray], queries: np.ndarray, k: int) -> np.ndarray:
    """Top-k scores per query over a dict of vectors, best first."""
    ids = sorted(store)
    scores = queries @ np.stack([store[i] for i in ids]).T
    return -np.sort(-scores, axis=1)[:, :k]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    n_remove=st.integers(0, 60),
    k=st.integers(1, 15),
)
def test_exact_search_equals_brute_force_after_adds_and_removes(
    seed: int, n: int, n_remove: int, k: int
) -> None:
    rng = np.random.default_rng(seed)
    d = 8
    index = VectorIndex(d)
    vectors = unit(rng, n, d)
    ids = [f"a{i}" for i in range(n)]
    index.add(ids, vectors)
    store = dict(zip(ids, vectors, strict=True))
    removed = [str(x) for x in rng.choice(ids, size=min(n_remove, n), replace=False)]
    assert index.remove(removed + ["never-added"]) == len(removed)
    for r in removed:
        del store[r]
    queries = unit(rng, 3, d)
    got_ids, got_scores = index.search(queries, k)
    assert len(index) == len(store)
    assert got_ids.shape == got_scores.shape == (3, min(k, len(store)))
    if store:
        np.testing.assert_allclose(got_scores, brute_force(store, queries, k), rtol=1e-5, atol=1e-6)
        for qi in range(3):  # every returned id's score is its true inner product
            for j, article_id in enumerate(got_ids[qi]):
                assert article_id in store
                assert got_scores[qi, j] == pytest.approx(
                    float(queries[qi] @ store[article_id]), abs=1e-5
                )


def test_removed_ids_are_never_returned_even_when_allowed() -> None:
    rng = np.random.default_rng(1)
    index = VectorIndex(16)
    vecs = unit(rng, 100, 16)
    ids = [f"n{i}" for i in range(100)]
    index.add(ids, vecs)
    gone = set(ids[::3])
    index.remove(gone)
    found, _ = index.search(vecs, k=100)
    assert not gone & set(found.ravel())
    found, _ = index.search(vecs[:5], k=10, allowed=ids)  # allowed lists removed ids too
    assert not gone & set(found.ravel())
    assert found.shape == (5, 10)
    # a removed vector's own query no longer finds itself first
    assert found[0, 0] != ids[0]


def test_allowed_filter_and_replacement() -> None:
    rng = np.random.default_rng(2)
    index = VectorIndex(8)
    vecs = unit(rng, 50, 8)
    ids = [f"x{i}" for i in range(50)]
    index.add(ids, vecs)
    allowed = {"x1", "x7", "x9", "unknown"}
    found, scores = index.search(vecs[7], k=10, allowed=allowed)
    assert found.shape == (1, 3) and set(found[0]) == {"x1", "x7", "x9"}
    assert found[0, 0] == "x7" and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert index.search(vecs[:2], k=5, allowed=set())[0].shape == (2, 0)
    index.add(["x7"], vecs[1:2])  # replace x7's vector
    assert len(index) == 50
    np.testing.assert_array_equal(index.vectors(["x7"]), vecs[1:2])


def test_bad_input_names_the_field() -> None:
    index = VectorIndex(4)
    with pytest.raises(InvalidInput, match="vectors"):
        index.add(["a"], np.zeros((1, 5), dtype=np.float32))
    with pytest.raises(InvalidInput, match="ids"):
        index.add(["a", "b"], np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(InvalidInput, match="ids"):
        index.add(["a", "a"], np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(InvalidInput, match="NaN"):
        index.add(["a"], np.full((1, 4), np.nan, dtype=np.float32))
    with pytest.raises(InvalidInput, match="k"):
        index.search(np.zeros((1, 4), dtype=np.float32), k=0)


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex(12)
    vecs = unit(rng, 40, 12)
    index.add([f"s{i}" for i in range(40)], vecs)
    index.remove(["s3", "s17"])
    index.save(tmp_path / "idx")
    assert not list((tmp_path / "idx").glob("*.pkl"))
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.ids() == index.ids() and len(loaded) == 38
    queries = unit(rng, 4, 12)
    for a, b in zip(index.search(queries, 7), loaded.search(queries, 7), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded.add(["new"], vecs[:1])  # a loaded index stays mutable
    assert "new" in loaded


def test_load_refuses_a_broken_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="vector index"):
        VectorIndex.load(tmp_path / "missing")


@pytest.mark.parametrize("backend", ["exact", pytest.param("hnsw", marks=pytest.mark.ml)])
def test_concurrent_adds_removes_and_searches_stay_consistent(backend: str) -> None:
    if backend == "hnsw":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(4)
    d = 16
    # exact_below=0: every search goes through the graph (k=20 of ~600 keeps recall ~1)
    index = VectorIndex(d, backend=backend, exact_below=0, ef_search=128)
    base = unit(rng, 500, d)
    index.add([f"b{i}" for i in range(500)], base)
    doomed = {f"b{i}" for i in range(0, 500, 2)}
    index.remove(doomed)
    errors: list[BaseException] = []
    added: dict[str, np.ndarray] = {}

    def writer(w: int) -> None:
        local = np.random.default_rng(100 + w)
        try:
            for step in range(100):
                new_id = f"w{w}-{step}"
                vec = unit(local, 1, d)
                index.add([new_id], vec)
                added[new_id] = vec[0]
                if step % 3 == 0:
                    index.remove([f"w{w}-{step - 1}"])
        except BaseException as exc:  # surfaced by the main thread's assert
            errors.append(exc)

    def reader() -> None:
        local = np.random.default_rng(7)
        try:
            for _ in range(150):
                found, scores = index.search(unit(local, 4, d), k=20)
                assert found.shape == (4, 20)
                assert not doomed & set(found.ravel())
                assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    removed = {f"w{w}-{s - 1}" for w in range(3) for s in range(0, 100, 3)}
    live = {f"b{i}": base[i] for i in range(1, 500, 2)}
    live.update({k: v for k, v in added.items() if k not in removed})
    assert set(index.ids()) == set(live)
    queries = unit(rng, 5, d)
    found, scores = index.search(queries, 10)
    assert set(found.ravel()) <= set(live)
    if backend == "exact":
        np.testing.assert_allclose(scores, brute_force(live, queries, 10), rtol=1e-5, atol=1e-6)
    else:  # approximate: nearly all of the true top 10
        truth = brute_force(live, queries, 10)
        assert np.mean(scores[:, -1] >= truth[:, -1] - 1e-5) >= 0.8


@pytest.mark.ml
def test_hnsw_recall_removal_and_persistence(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    d, n = 32, 4000
    centers = unit(rng, 40, d)
    vecs = centers[rng.integers(0, 40, n)] + 0.3 * unit(rng, n, d)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"h{i}" for i in range(n)]
    hnsw = VectorIndex(d, backend="hnsw", exact_below=100)
    exact = VectorIndex(d)
    hnsw.add(ids, vecs)
    exact.add(ids, vecs)
    gone = set(ids[::5])
    hnsw.remove(gone)
    exact.remove(gone)
    queries = unit(rng, 50, d)
    h_ids, h_scores = hnsw.search(queries, 10)
    e_ids, _ = exact.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(h_ids, e_ids, strict=True)])
    assert recall >= 0.9
    assert not gone & set(h_ids.ravel())
    # restricted search: only allowed, live ids
    allowed = set(ids[:1000])
    a_ids, _ = hnsw.search(queries[:5], 10, allowed=allowed)
    assert set(a_ids.ravel()) <= allowed - gone
    # removing most vectors triggers a rebuild; still no removed id comes back
    hnsw.remove(ids[: n // 2])
    assert len(hnsw._labels) == len(hnsw)  # rebuilt: no tombstones left
    r_ids, _ = hnsw.search(queries, 10)
    assert not (gone | set(ids[: n // 2])) & set(r_ids.ravel())
    hnsw.save(tmp_path / "h")
    loaded = VectorIndex.load(tmp_path / "h")
    assert loaded.backend == "hnsw" and len(loaded) == len(hnsw)
    np.testing.assert_array_equal(loaded.search(queries, 10)[0], r_ids)
