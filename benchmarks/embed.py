"""Benchmark article embedding: articles/s of each embedder path on title + abstract texts.

    python benchmarks/embed.py [--quick] [--json FILE] [--threads 2] [--cache-dir DIR]

Texts are synthetic news articles (title + 2-3 abstract sentences, ~40 words, seeded) passed
through `article_text`, the text newsdesk embeds. Systems (all all-MiniLM-L6-v2 on CPU):

    sentence_transformers          encode() per batch of 32 in arrival order (as articles stream in)
    sentence_transformers_sorted   one encode() over all texts: sorted by length, less padding
    sentence_transformers_seq128   sorted, and truncated at 128 tokens instead of 256
    onnx_fp32                      the exported ONNX graph (pooling inside), length-sorted batches
    onnx_int8                      the same, MatMul weights dynamically quantised to int8
    onnx_int8_cached               CachedEmbedder(onnx_int8, SQLite) on texts already cached

Each system reports articles/s (median over repeats) and cosine to the reference vectors of
sentence_transformers_sorted (min and mean over texts). Threads: torch and onnxruntime both get
`--threads` intra-op threads (2 = this machine's cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from newsdesk.content import CachedEmbedder, SqliteEmbeddingCache
from newsdesk.content.embedder import Embedder, article_text

TARGET = 400.0  # articles/s on 2 cores

_SUBJECTS = [
    "The city council",
    "Bayern Munich",
    "The European Central Bank",
    "Researchers at MIT",
    "The prime minister",
    "Apple",
    "A family-run bakery",
    "Firefighters",
    "The national team",
    "Investors",
    "The health ministry",
    "Teachers' unions",
    "NASA",
    "A Premier League club",
    "Local farmers",
    "The opposition party",
    "Tesla",
    "Emergency services",
    "The Senate",
]
_VERBS = [
    "announced",
    "rejected",
    "celebrated",
    "warned about",
    "unveiled",
    "postponed",
    "criticised",
    "approved",
    "is investigating",
    "confirmed",
]
_OBJECTS = [
    "a new budget for public schools",
    "a dramatic late winner against their rivals",
    "higher interest rates to fight inflation",
    "a breakthrough in battery chemistry",
    "plans for a high-speed rail line",
    "its latest smartphone lineup",
    "record sales during the holiday season",
    "a wildfire spreading near the coast",
    "a vaccine campaign for the winter",
    "a strike over pay and working hours",
    "the launch of a lunar lander",
    "a transfer fee worth 80 million euros",
    "drought relief for the southern provinces",
    "a reform of the pension system",
]
_SENTENCES = [
    "Officials said the decision would take effect next month, pending a final vote.",
    "Critics argue the move comes too late and does little for those most affected.",
    "The announcement surprised many analysts, who had expected a more cautious approach.",
    "Fans gathered outside the stadium late into the night to celebrate the result.",
    "Markets reacted calmly to the news on Tuesday, with the index closing slightly higher.",
    "Residents were asked to stay indoors and keep windows closed until further notice.",
    "The company expects the first shipments to reach customers in early spring.",
    "Experts say more research is needed before firm conclusions can be drawn.",
    "The mayor promised a public consultation before any construction begins.",
    "Several thousand people have signed a petition calling for the plan to be scrapped.",
    "It is the third such incident in the region since the start of the year.",
    "Ticket prices are expected to rise by around ten percent over the next two seasons.",
]


def make_texts(n: int, seed: int = 0) -> list[str]:
    """n synthetic articles (title + abstract) as embedded by newsdesk, ~40 words each."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        title = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        abstract = " ".join(rng.sample(_SENTENCES, rng.randint(2, 3)))
        texts.append(article_text(title, abstract))
    return texts


class PerBatchCalls(Embedder):
    """Calls the inner embedder once per `batch` texts, in arrival order (no global sort)."""

    def __init__(self, inner: Embedder, batch: int = 32) -> None:
        self.inner, self.batch, self.name, self.dim = inner, batch, inner.name, inner.dim

    def embed(self, texts: list[str]) -> np.ndarray:  # type: ignore[override]
        parts = [
            self.inner.embed(texts[i : i + self.batch]) for i in range(0, len(texts), self.batch)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


def measure(
    embed: Callable[[list[str]], np.ndarray], texts: list[str], repeats: int
) -> tuple[float, float, np.ndarray]:
    """(median articles/s, median process CPU ms per article, vectors of the last repeat).

    CPU time is reported because wall-clock rates drop when other processes share the cores;
    it counts every thread of this process (including onnxruntime's spin-waits).
    """
    embed(texts[:32])  # warm-up
    rates, cpu_ms, vectors = [], [], np.zeros(0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        vectors = embed(texts)
        rates.append(len(texts) / (time.perf_counter() - wall))
        cpu_ms.append(1000.0 * (time.process_time() - cpu) / len(texts))
    return statistics.median(rates), statistics.median(cpu_ms), vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512 texts, 1 repeat (< 3 min)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where ONNX exports are cached (default ~/.cache/newsdesk)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from newsdesk.content.onnx_embedder import OnnxEmbedder, default_cache_dir
    from newsdesk.content.sentence_transformer import (
        SentenceTransformerEmbedder,
        default_model_path,
    )

    n, repeats = (512, 1) if args.quick else (2000, 3)
    texts = make_texts(n)
    words = float(np.mean([len(t.split()) for t in texts]))
    cache_dir = args.cache_dir or default_cache_dir()
    print(
        f"embedding {n} articles (~{words:.0f} words each), {args.threads} threads, "
        f"model {default_model_path()}"
    )

    load_start = list(os.getloadavg())  # a shared machine skews every figure: record it
    systems: dict[str, dict[str, Any]] = {}
    reference: np.ndarray | None = None

    def run(name: str, embedder: Embedder, how: str, texts_: list[str] = texts) -> None:
        nonlocal reference
        rate, cpu_ms, vectors = measure(embedder.embed, texts_, repeats)
        entry: dict[str, Any] = {
            "articles_per_s": round(rate, 1),
            "cpu_ms_per_article": round(cpu_ms, 3),
            "embedder": embedder.name,
            "how": how,
            "meets_target": rate >= TARGET,
        }
        if reference is None:
            reference = vectors
        cosine = np.sum(vectors * reference, axis=1)
        entry["cosine_to_reference_min"] = round(float(cosine.min()), 5)
        entry["cosine_to_reference_mean"] = round(float(cosine.mean()), 5)
        systems[name] = entry
        print(
            f"  {name:<30s} {rate:8.1f} articles/s  {cpu_ms:6.2f} CPU-ms/article   "
            f"cosine min {cosine.min():.4f} mean {cosine.mean():.4f}   "
            f"{'>= 400' if rate >= TARGET else ''}"
        )

    st = SentenceTransformerEmbedder(batch_size=32, threads=args.threads)
    run("sentence_transformers_sorted", st, "one encode() call: global length sort, batch 32")
    run("sentence_transformers", PerBatchCalls(st), "encode() per 32 texts in arrival order")
    st128 = SentenceTransformerEmbedder(batch_size=32, max_seq_length=128, threads=args.threads)
    run("sentence_transformers_seq128", st128, "global length sort, max 128 tokens")
    del st, st128

    export_s: dict[str, float] = {}
    for name, quantize in (("onnx_fp32", False), ("onnx_int8", True)):
        started = time.perf_counter()
        onnx = OnnxEmbedder(quantize=quantize, cache_dir=cache_dir, threads=args.threads)
        export_s[name] = round(time.perf_counter() - started, 2)
        run(name, onnx, f"onnxruntime, length-sorted batches of 32, {onnx.onnx_path}")

    with tempfile.TemporaryDirectory() as tmp:
        cache = SqliteEmbeddingCache(Path(tmp) / "embeddings.sqlite")
        cached = CachedEmbedder(
            OnnxEmbedder(quantize=True, cache_dir=cache_dir, threads=args.threads), cache
        )
        cached.embed(texts)  # fill the cache: the timed passes are all hits
        cached.hits = cached.misses = 0
        run("onnx_int8_cached", cached, "SQLite cache hits (texts embedded before)")
        systems["onnx_int8_cached"]["cache_hit_rate"] = round(cached.hit_rate, 4)
        print(f"  cache hit rate of the timed passes: {cached.hit_rate:.3f}")
        cache.close()

    fastest = max(
        systems, key=lambda s: systems[s]["articles_per_s"] if s != "onnx_int8_cached" else -1
    )
    reaching = [s for s, e in systems.items() if e["meets_target"] and s != "onnx_int8_cached"]
    print(
        f"fastest model path: {fastest} ({systems[fastest]['articles_per_s']:.0f} articles/s); "
        f"reaching {TARGET:.0f}/s: {', '.join(reaching) or 'none'}"
    )
    print(f"load average at start {load_start[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"ONNX session start (export on first use, then cached in {cache_dir}): {export_s}")

    if args.json:
        report = {
            "benchmark": "embed",
            "quick": args.quick,
            "n_texts": n,
            "mean_words_per_text": round(words, 1),
            "threads": args.threads,
            "target_articles_per_s": TARGET,
            "model_path": str(default_model_path()),
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
            },
            "onnx_session_start_s": export_s,
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
            "fastest_model_path": fastest,
            "reaching_target": reaching,
            "systems": systems,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
