"""Benchmark the VectorIndex: search latency and recall, exact vs HNSW, and live add/remove.

    python benchmarks/ann.py [--quick] [--json FILE]

Vectors are clustered unit vectors of dim 384 (like MiniLM article embeddings), seeded.
Systems:
    exact_10k      the dense inner-product index over 10k live articles (serving's case)
    exact_100k     the same over the 100k catalog
    hnsw_100k      faiss HNSW (M=32, efSearch=64) over the 100k catalog
For each: ms per query (batch of 1) and per batch of 32 queries, recall@10 against exact, and
for the exact index add/remove throughput of single articles (the live feed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from newsdesk.models.ann import VectorIndex

DIM = 384


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    x = centers[rng.integers(0, len(centers), n)] + 0.5 * rng.standard_normal((n, DIM)) / np.sqrt(
        DIM
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def latency_ms(index: VectorIndex, queries: np.ndarray, batch: int, k: int = 10) -> float:
    """Median ms per search call of `batch` queries."""
    times = []
    for start in range(0, len(queries) - batch + 1, batch):
        began = time.perf_counter()
        index.search(queries[start : start + batch], k)
        times.append(1000.0 * (time.perf_counter() - began))
    return statistics.median(times)


def recall_at_10(index: VectorIndex, truth: VectorIndex, queries: np.ndarray) -> float:
    got, _ = index.search(queries, 10)
    want, _ = truth.search(queries, 10)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30k catalog instead of 100k")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((200, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    n_catalog = 30_000 if args.quick else 100_000
    catalog = clustered(rng, n_catalog, centers)
    ids = [f"a{i}" for i in range(n_catalog)]
    queries = clustered(rng, 256, centers)
    systems: dict[str, dict[str, Any]] = {}

    live = VectorIndex(DIM)
    live.add(ids[:10_000], catalog[:10_000])
    exact = VectorIndex(DIM)
    exact.add(ids, catalog)
    began = time.perf_counter()
    hnsw = VectorIndex(DIM, backend="hnsw", exact_below=0)
    hnsw.add(ids, catalog)
    build_s = time.perf_counter() - began

    for name, index in (
        ("exact_10k", live),
        (f"exact_{n_catalog // 1000}k", exact),
        (f"hnsw_{n_catalog // 1000}k", hnsw),
    ):
        truth = live if index is live else exact
        entry = {
            "n": len(index),
            "ms_per_query": round(latency_ms(index, queries, 1), 3),
            "ms_per_batch32": round(latency_ms(index, queries, 32), 3),
            "recall_at_10": round(recall_at_10(index, truth, queries), 4),
        }
        systems[name] = entry
        print(
            f"  {name:<12s} n={entry['n']:>7,d}  {entry['ms_per_query']:8.3f} ms/query  "
            f"{entry['ms_per_batch32']:8.3f} ms/32 queries  recall@10 {entry['recall_at_10']:.3f}"
        )
    systems[f"hnsw_{n_catalog // 1000}k"]["build_s"] = round(build_s, 2)
    print(f"  HNSW build over {n_catalog:,} vectors: {build_s:.1f} s")

    # the live feed: one article arrives, one expires, repeatedly
    extra = clustered(rng, 2000, centers)
    began = time.perf_counter()
    for i in range(2000):
        live.add([f"new{i}"], extra[i : i + 1])
        live.remove([ids[i]])
    per_s = 2 * 2000 / (time.perf_counter() - began)
    systems["exact_10k"]["add_remove_ops_per_s"] = round(per_s)
    print(f"  exact_10k live feed: {per_s:,.0f} single add/remove ops/s")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "ann",
                    "quick": args.quick,
                    "dim": DIM,
                    "cpus": os.cpu_count(),
                    "systems": systems,
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
