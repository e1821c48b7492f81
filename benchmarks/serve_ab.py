"""Same-window A/B of serving variants: the cost of a feature as a ratio, on a noisy machine.

    python benchmarks/serve_ab.py [--quick] --variant plain: \
        --variant ladder:interleave=0.1,NEWSDESK_EXPLORATION_SHARE=0.1 \
        [--variant llm:llm=1] [--rates 100,150] [--duration 20] [--reps 3] [--json FILE]

A variant is NAME:SPEC, SPEC a comma-separated list of KEY=VALUE: `interleave=SHARE` runs a
live interleaving experiment over that share of readers (serve_load.start_interleaving: the
active bundle against itself, so each interleaved request pays two rankings), `llm=1` turns
every LLM feature on with the upsert feed (serve_load_llm), `explain=1` asks for explanations
on every request without the other LLM features, `workers=N`; anything else is an
environment variable of the server. Each repetition starts every variant's server in turn on
the same state (serve_load's), warms it and runs every rate for `--duration` seconds, so the
variants share the machine's slow and fast moments; the JSON keeps every run and, per variant
and rate, the means of p99, degraded share and server CPU per request with their ratio to the
first variant. A fallback answer is a failure here as everywhere (the `degraded` share).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import serve_load as sl  # noqa: E402

SPECIAL = {"interleave", "llm", "explain", "workers"}


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, spec = text.partition(":")
    if not name:
        raise SystemExit(f"--variant {text!r}: NAME:KEY=VALUE,... (NAME must not be empty)")
    items = {}
    for part in filter(None, spec.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {part!r} is not KEY=VALUE")
        items[key] = value
    return name, items


def run_variant(state: dict[str, Any], files: dict[str, str], spec: dict[str, str],
                rates: list[float], duration: float, log: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in spec.items() if k not in SPECIAL}
    interleave = float(spec.get("interleave", 0) or 0)
    llm = spec.get("llm") in ("1", "true")
    workers = int(spec.get("workers", 1))
    extra: dict[str, Any] = {}
    if llm:
        import serve_load_llm

        env = {**serve_load_llm.server_env(), **env}
        extra = serve_load_llm.REQUEST_EXTRA
    if spec.get("explain") in ("1", "true"):
        extra = {**extra, "explain": True}
    if interleave:
        env.setdefault("NEWSDESK_ADMIN_API_KEY", sl.INTERLEAVE_ADMIN_KEY)
    port = sl.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = sl.start_newsdesk(state, port, log, env, workers=workers)
    llm_load = None
    rows = []
    try:
        sl.wait_ready(url, proc, "/readyz", 600, log)
        sl.wait_all_workers(url, workers, 600)
        if interleave:
            sl.start_interleaving(url, env["NEWSDESK_ADMIN_API_KEY"], interleave)
        if llm:
            llm_load = serve_load_llm.LLMLoad(url, {**state, **files},
                                              admin_key=env["NEWSDESK_ADMIN_API_KEY"])
            llm_load.start()
        base = {"kind": "recs", "url": url, "path": "/v1/recommendations", "k": 20,
                "users_file": files["users_file"], **({"extra": extra} if extra else {})}
        sl.run_loadgen({**base, "rate": 50, "duration": 4})  # warm-up
        for rate in rates:
            cpu0 = sl.tree_cpu_s(proc.pid)
            r = sl.run_loadgen({**base, "rate": rate, "duration": duration})
            cpu_ms = (sl.tree_cpu_s(proc.pid) - cpu0) / max(1, r["requests"]) * 1000
            rows.append({**{k: r[k] for k in ("target_rps", "achieved_rps", "p50_ms", "p99_ms",
                                               "errors", "degraded")},
                         "cpu_ms_per_req": round(cpu_ms, 3)})
            print(f"    {rate:.0f} req/s: {json.dumps(rows[-1])}", flush=True)
        if llm_load is not None:
            rows.append({"llm": llm_load.report()})
    finally:
        if interleave:
            sl.stop_interleaving(url, env["NEWSDESK_ADMIN_API_KEY"])
        sl.stop(proc)
    return rows


def summarise(runs: list[dict[str, Any]], names: list[str], rates: list[float]
              ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {}
        for rate in rates:
            rows = [row for run in runs if run["variant"] == name for row in run["rows"]
                    if row.get("target_rps") == rate]
            out[name][f"{rate:g}"] = {
                key: round(statistics.fmean(r[key] for r in rows), 4)
                for key in ("p99_ms", "degraded", "cpu_ms_per_req", "errors")}
    first = names[0]
    for name in names[1:]:
        for rate, figures in out[name].items():
            base = out[first][rate]
            figures["ratio_vs_" + first] = {
                key: round(figures[key] / base[key], 3) if base[key] else None
                for key in ("p99_ms", "cpu_ms_per_req")}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="serve_load's scaled-down state")
    ap.add_argument("--variant", action="append", required=True, metavar="NAME:SPEC")
    ap.add_argument("--rates", default="100,150")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="state directory (reused)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    names = [n for n, _ in variants]
    if len(set(names)) != len(names):
        raise SystemExit("--variant names must differ")
    rates = [float(r) for r in args.rates.split(",")]
    work = args.work or Path(f".serve-load-{'quick' if args.quick else 'full'}")
    state = sl.build_state(work, args.quick, "hashing")
    users_file = work / "users.txt"
    users_file.write_text("\n".join(state["users"]))
    articles_file = work / "live.txt"
    articles_file.write_text("\n".join(state["live_ids"]))
    files = {"users_file": str(users_file), "articles_file": str(articles_file)}
    runs = []
    for rep in range(args.reps):
        for name, spec in variants:
            print(f"rep {rep} variant {name} {spec}", flush=True)
            rows = run_variant(state, files, spec, rates, args.duration, work / "server.log")
            runs.append({"rep": rep, "variant": name, "spec": spec, "rows": rows})
    doc = {"benchmark": "serve_ab", "quick": args.quick, "rates": rates,
           "duration_s": args.duration, "reps": args.reps,
           "variants": {n: s for n, s in variants},
           "summary": summarise(runs, names, rates), "runs": runs,
           "machine": {"cpus": os.cpu_count(), "load_avg_end": [round(x, 2)
                                                                for x in os.getloadavg()]}}
    print(json.dumps(doc["summary"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
