"""Benchmark the local model's raw speed: prompt and generation tokens/s, by thread count.

    python benchmarks/llm_tokens.py [--quick] [--json FILE] [--threads 1,2] [--model M]

For each thread count, a fresh LocalProvider (llama.cpp via cyllama) decodes a real text
(MIND titles and abstracts) as a prompt in the provider's 64-token blocks (prompt tokens/s),
then generates greedily token by token, once without and once with the enrichment schema's
GBNF grammar at the head of the sampler chain (generation tokens/s, and the sampling
milliseconds per token the grammar adds). Repeats `--repeats` times; each figure is the median.
Run under `nice` on a shared machine and compare thread counts within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mind-sample" / "news.tsv"


def measure(threads: int, text: str, prompt_tokens: int, gen_tokens: int, repeats: int,
            model: str) -> dict[str, Any]:
    from newsdesk.llm.enrichment import Enrichment
    from newsdesk.llm.local import PREFILL_CHUNK, LocalProvider

    p = LocalProvider(model, threads=threads)
    ctx, cpp = p._ctx, p._cpp
    grammar = p.grammar_for(Enrichment.model_json_schema())
    tokens = p.vocab.tokenize(text, add_special=True, parse_special=True)[:prompt_tokens]
    runs: dict[str, list[float]] = {"prompt_tok_s": [], "gen_tok_s": [],
                                    "gen_tok_s_grammar": [], "grammar_sample_ms_per_tok": []}
    try:
        for _ in range(repeats):
            for use_grammar in (False, True):
                ctx.kv_cache_clear()
                t = time.perf_counter()
                for i in range(0, len(tokens), PREFILL_CHUNK):
                    ctx.decode(cpp.llama_batch_get_one(tokens[i:i + PREFILL_CHUNK], i))
                if not use_grammar:
                    runs["prompt_tok_s"].append(len(tokens) / (time.perf_counter() - t))
                sampler = p._sampler(0.0, grammar if use_grammar else None, seed=1)
                position, n, sample_s = len(tokens), 0, 0.0
                t = time.perf_counter()
                for n in range(1, gen_tokens + 1):  # noqa: B007 - n is the count after
                    s0 = time.perf_counter()
                    token = sampler.sample(ctx, -1)
                    sample_s += time.perf_counter() - s0
                    if p.vocab.is_eog(token):
                        break
                    ctx.decode(cpp.llama_batch_get_one([token], position))
                    position += 1
                elapsed = time.perf_counter() - t
                sampler.close()
                if use_grammar:
                    runs["gen_tok_s_grammar"].append(n / elapsed)
                    runs["grammar_sample_ms_per_tok"].append(1000 * sample_s / n)
                else:
                    runs["gen_tok_s"].append(n / elapsed)
    finally:
        p._cached = []
        p.close()
    return {k: round(statistics.median(v), 1) for k, v in runs.items()} | {
        "prompt_tokens": len(tokens), "gen_tokens_max": gen_tokens, "repeats": repeats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats, 256 prompt tokens")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args(argv)
    rows = [ln.split("\t") for ln in args.data.read_text(encoding="utf-8").splitlines()[:40]]
    text = "\n".join(f"{r[3]}. {r[4]}" for r in rows if len(r) >= 5)
    repeats, prompt_tokens = (2, 256) if args.quick else (5, 512)
    out: dict[str, Any] = {"benchmark": "llm_tokens", "quick": args.quick, "model": args.model,
                           "threads": {}, "machine": {"cpus": os.cpu_count(), "shared": True}}
    for threads in (int(t) for t in args.threads.split(",")):
        out["threads"][str(threads)] = r = measure(threads, text, prompt_tokens, 64, repeats,
                                                   args.model)
        print(f"threads {threads}: {json.dumps(r)}", flush=True)
    out["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
