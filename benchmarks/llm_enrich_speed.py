"""Benchmark batch enrichment speed with the local model: articles/s and valid share per setup.

    python benchmarks/llm_enrich_speed.py [--quick] [--json FILE] [--data news.tsv]
        [--articles 50] [--setups v1:1,v2:1,v2:2] [--max-seconds S] [--out DIR] [--all]
        [--resume]

A setup is PROMPT:PROCESSES (`v2:2`: prompt enrich.v2, two worker processes, each with its own
model on one thread). All setups run on the same first `--articles` articles of the MIND
sample's news.tsv, one after the other, in one run, so their ratios are comparable on a shared
machine (the absolute figures are not). `--all` runs the first setup over every article of the
file instead (the full-sample run), writing the JSON after every 50 articles with
`"complete": false` until the end, so a run cut by `--max-seconds` still leaves its count;
`--out DIR` keeps the validated records as an enrichment table (llm/enrichment_store.py);
with `--resume` the articles already in that table are skipped (the full sample takes hours
here, so it runs in several sittings) and the JSON's `stored_valid` counts the table's rows.

Per setup: articles, valid, invalid_dropped (answers that failed validation after the retry;
never stored), other failures by kind, articles_per_s (articles attempted / wall seconds),
wall_s, mean prompt / completion tokens, model and prompt version. Workers split the articles
round-robin; each is a separate process (llama.cpp contexts are not thread-safe, and one
process per core is how a batch job uses a multi-core machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mind-sample" / "news.tsv"


def load_rows(path: Path) -> list[dict[str, str]]:
    """MIND news.tsv rows, as the accuracy benchmark reads them."""
    sys.path.insert(0, str(Path(__file__).parent))
    from llm_enrich import load_articles

    return load_articles(path)


def _worker(rows: list[dict[str, str]], prompt_version: int, model: str, threads: int,
            out: str | None, results: Any, stop: Any) -> None:
    # one process = one model on one thread; results go back one article at a time, so the
    # parent can report a partial run
    from newsdesk.data.schema import Article
    from newsdesk.errors import LLMError, LLMInvalidOutput
    from newsdesk.llm.enrichment import Enricher
    from newsdesk.llm.enrichment_store import EnrichmentStore
    from newsdesk.llm.local import LocalProvider
    from newsdesk.llm.prompts import load_prompt

    provider = LocalProvider(model, threads=threads)
    enricher = Enricher(provider, load_prompt("enrich", prompt_version), timeout_s=300)
    store = EnrichmentStore(Path(out)) if out else None
    pending = []
    for row in rows:
        if stop.is_set():
            break
        article = Article(article_id=row["id"], title=row["title"], abstract=row["abstract"],
                          category=row["category"], published_at=datetime.now(UTC))
        try:
            record = enricher.enrich(article)
            pending.append(record)
            results.put(("valid", record.completion_tokens, provider.model))
        except LLMInvalidOutput:
            results.put(("invalid_dropped", 0, provider.model))
        except LLMError as exc:
            results.put((type(exc).__name__, 0, provider.model))
        if store is not None and len(pending) >= 16:
            store.write(pending)
            pending = []
    if store is not None:
        store.write(pending)
    results.put(("done", 0, provider.model))
    provider.close()


def run_setup(rows: list[dict[str, str]], prompt_version: int, processes: int, *, model: str,
              threads: int, out: Path | None, max_seconds: float | None,
              on_progress: Any = None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")  # a clean process: no model or thread state inherited
    results = ctx.Queue()
    stop = ctx.Event()
    shards = [rows[i::processes] for i in range(processes)]
    start = time.perf_counter()
    workers = [ctx.Process(target=_worker, args=(shard, prompt_version, model, threads,
                                                 str(out) if out else None, results, stop))
               for shard in shards if shard]
    for w in workers:
        w.start()
    counts: Counter[str] = Counter()
    tokens = 0
    model_name = model
    done = 0
    first_answer_s: float | None = None
    while done < len(workers):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            stop.set()
        try:
            kind, n_tokens, model_name = results.get(timeout=5)
        except Exception:  # noqa: BLE001 - queue.Empty: check the workers are alive
            if not any(w.is_alive() for w in workers):
                break
            continue
        if kind == "done":
            done += 1
            continue
        if first_answer_s is None:
            first_answer_s = time.perf_counter() - start
        counts[kind] += 1
        tokens += n_tokens
        attempted = sum(counts.values())
        if on_progress is not None and attempted % 50 == 0:
            on_progress(summary(counts, tokens, time.perf_counter() - start, model_name,
                                prompt_version, processes, threads, first_answer_s, False))
    for w in workers:
        w.join(timeout=60)
    complete = sum(counts.values()) == len(rows)
    return summary(counts, tokens, time.perf_counter() - start, model_name, prompt_version,
                   processes, threads, first_answer_s, complete)


def summary(counts: Counter[str], tokens: int, wall_s: float, model: str, prompt_version: int,
            processes: int, threads: int, first_answer_s: float | None,
            complete: bool) -> dict[str, Any]:
    attempted = sum(counts.values())
    valid = counts.get("valid", 0)
    return {"articles": attempted, "valid": valid,
            "invalid_dropped": counts.get("invalid_dropped", 0),
            "other_failures": {k: v for k, v in counts.items()
                               if k not in ("valid", "invalid_dropped")},
            "valid_share": round(valid / attempted, 4) if attempted else None,
            "articles_per_s": round(attempted / wall_s, 4) if wall_s else None,
            "wall_s": round(wall_s, 1),
            # model loading is inside wall_s; this is when the first answer arrived
            "first_answer_s": round(first_answer_s, 1) if first_answer_s else None,
            "mean_completion_tokens": round(tokens / valid, 1) if valid else None,
            "model": model, "prompt_version": f"enrich.v{prompt_version}",
            "processes": processes, "threads_per_process": threads, "complete": complete}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 articles per setup")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--articles", type=int, default=50)
    parser.add_argument("--setups", default="v1:1,v2:1,v2:2",
                        help="comma-separated PROMPT:PROCESSES, e.g. v1:1,v2:2")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per process")
    parser.add_argument("--all", action="store_true",
                        help="run the first setup over every article of --data")
    parser.add_argument("--out", type=Path, default=None, help="store the records here")
    parser.add_argument("--resume", action="store_true",
                        help="with --out: skip the articles already stored there")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop each setup after this long (the JSON says complete: false)")
    args = parser.parse_args(argv)
    rows = load_rows(args.data)
    if not args.all:
        rows = rows[:20 if args.quick else args.articles]
    already: set[str] = set()
    if args.resume:
        if args.out is None:
            parser.error("--resume needs --out (the table to continue)")
        from newsdesk.llm.enrichment_store import EnrichmentStore

        already = set(EnrichmentStore(args.out).keys())
        rows = [row for row in rows if row["id"] not in already]
    setups = []
    for item in args.setups.split(","):
        prompt, _, procs = item.strip().partition(":")
        if not prompt.startswith("v") or not prompt[1:].isdigit() or not procs.isdigit():
            parser.error(f"--setups: {item!r} is not PROMPT:PROCESSES such as v2:2")
        setups.append((int(prompt[1:]), int(procs)))
    if args.all:
        setups = setups[:1]
    doc: dict[str, Any] = {
        "benchmark": "llm_enrich_speed", "quick": args.quick, "data": str(args.data),
        "articles_in_data": len(load_rows(args.data)), "all": args.all,
        "resumed_with_stored": len(already) if args.resume else None,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"), "setups": {},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "shared": True},
        "notes": "articles_per_s counts every attempted article over the wall time including "
                 "model loading; compare setups within one run (shared 2-core machine)."}

    def write(partial: dict[str, Any] | None = None, name: str = "") -> None:
        if partial is not None:
            doc["setups"][name] = partial
        doc["machine"]["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        if args.out is not None:
            from newsdesk.llm.enrichment_store import EnrichmentStore

            doc["stored_valid"] = len(EnrichmentStore(args.out).keys())
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(doc, indent=2) + "\n")

    for prompt_version, processes in setups:
        name = f"v{prompt_version}:{processes}"
        print(f"setup {name} on {len(rows)} articles ...", file=sys.stderr, flush=True)
        result = run_setup(rows, prompt_version, processes, model=args.model,
                           threads=args.threads, out=args.out, max_seconds=args.max_seconds,
                           on_progress=lambda r, n=name: (write(r, n), print(
                               f"  {r['articles']} articles, {r['articles_per_s']}/s",
                               file=sys.stderr, flush=True)))
        write(result, name)
        print(f"{name}: {json.dumps(result)}", flush=True)
    base = doc["setups"].get(f"v{setups[0][0]}:{setups[0][1]}", {}).get("articles_per_s")
    for result in doc["setups"].values():
        if base and result.get("articles_per_s"):
            result["speed_vs_first_setup"] = round(result["articles_per_s"] / base, 3)
    write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
