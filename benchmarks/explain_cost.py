"""Benchmark the server-side cost of `explain=true`: CPU ms per recommendation with and without.

    python benchmarks/explain_cost.py [--quick] [--json FILE] [--work DIR]

Starts `newsdesk serve` on serve_load.py's quick state (`--work`, built if missing), sends
sequential requests (k=20, random known readers) alternating blocks of explain=false /
explain=true, and reports per block the wall ms per request and the server's CPU ms per
request (all its processes, /proc). Sequential requests keep the server out of overload, so the
CPU per request is the cost of the work itself. Run under `nice` on a shared machine and
compare the two modes within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    import httpx

    import serve_load as sl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 blocks of 60 requests per mode")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=Path("/tmp/explain-cost-state"))
    args = ap.parse_args(argv)
    blocks, per_block = (2, 60) if args.quick else (5, 200)
    state = sl.build_state(args.work, True, "hashing")
    port = sl.free_port()
    url = f"http://127.0.0.1:{port}"
    log = args.work / "server_explain.log"
    srv = sl.start_newsdesk(state, port, log, {}, 1)
    runs: dict[str, list[dict[str, float]]] = {"explain_false": [], "explain_true": []}
    try:
        sl.wait_ready(url, srv, "/readyz", 600, log)
        rng = random.Random(3)
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(blocks):
                for explain in (False, True):
                    cpu0, t = sl.tree_cpu_s(srv.pid), time.perf_counter()
                    for _ in range(per_block):
                        r = client.post("/v1/recommendations", json={
                            "user_id": rng.choice(state["users"]), "k": 20, "explain": explain})
                        r.raise_for_status()
                    runs[f"explain_{str(explain).lower()}"].append({
                        "wall_ms": round((time.perf_counter() - t) / per_block * 1000, 2),
                        "server_cpu_ms": round((sl.tree_cpu_s(srv.pid) - cpu0)
                                               / per_block * 1000, 2)})
    finally:
        sl.stop(srv)
    med = {k: statistics.median(b["server_cpu_ms"] for b in v) for k, v in runs.items()}
    out = {"benchmark": "explain_cost", "quick": args.quick, "blocks": runs,
           "median_server_cpu_ms": med,
           "explain_cpu_ratio": round(med["explain_true"] / med["explain_false"], 3),
           "machine": "2 cores shared with other jobs; compare the modes within one run"}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
