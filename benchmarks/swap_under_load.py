"""Hot swap and roll back of the model under load: zero failed requests, no half-loaded bundle.

    benchmarks/swap_under_load.py [--quick] [--json FILE] [--work DIR] [--swaps N] [--rate R]

One `newsdesk serve` process (the small world of `benchmarks/chaos.py`: a simulated day and a
bundle trained on it) with two bundles on disk: the trained one (A) and a copy under another
version (B, the same files). First a short rate sweep (`serve_load.sweep`) finds the highest
rate the personalised path sustains (p99 < 50 ms, no errors, at most 1% degraded answers:
`serve_load.max_rate`); then, at that rate, `--swaps` times (default 10): promote B (which
loads it fully, from disk, while requests keep being answered by A), then roll back to A.
Every response is traced (`serve_load.open_loop`): status, degraded flag, model_version.

Checks: `failed_requests` = 0 (every request answered 200); every version seen is A or B and
its bundle on disk verifies (manifest and every file's sha256: a complete bundle);
`half_loaded` counts answers without a model version. The registry swaps one
reference to a fully loaded model, so a request is served by the old or the new one, never a
mix. The machine may be shared: the sustained rate is what it was at the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos import ADMIN_KEY, World, small_world  # noqa: E402
from newsdesk.chaos.server import ServeProcess  # noqa: E402

OTHER = "v-swap-copy"
K = 10


def copy_bundle(bundles: Path, version: str, new_version: str) -> None:
    dest = bundles / new_version
    if dest.exists():
        return
    shutil.copytree(bundles / version, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.update(version=new_version, created_at="2000-01-01T00:00:00+00:00")  # older
    (dest / "manifest.json").write_text(json.dumps(manifest))


def bundle_complete(bundles: Path, version: str) -> bool:
    from newsdesk.errors import BundleError
    from newsdesk.models.bundle import read_manifest, resolve_bundle, verify_files

    try:
        path = resolve_bundle(bundles, version)
        verify_files(path, read_manifest(path))
    except BundleError:
        return False
    return True


def find_rate(server: ServeProcess, users: list[str], work: Path, steps: list[float],
              step_s: float) -> tuple[float, list[dict[str, Any]]]:
    from serve_load import MAX_DEGRADED_SHARE, max_rate, sweep

    users_file = work / "users.txt"
    users_file.write_text("\n".join(users))
    results = sweep(server.url, "/v1/recommendations", (steps[0], step_s), steps[1:], step_s,
                    {"users_file": str(users_file)}, server_pid=server.pid)
    rate = max_rate(results, MAX_DEGRADED_SHARE)
    return rate, results


def run_swaps(world: World, work: Path, *, swaps: int, rate: float | None,
              sweep_steps: list[float], sweep_s: float, settle_s: float = 1.0
              ) -> dict[str, Any]:
    import httpx

    from serve_load import open_loop

    bundles = work / "bundles"
    if not bundles.exists():
        shutil.copytree(world.bundles, bundles)
    copy_bundle(bundles, world.version, OTHER)
    server = ServeProcess(
        ["--workers", "1", "--dataset", str(world.dataset), "--bundles", str(bundles),
         "--state-dir", str(work / "state"), "--clock-start", world.clock_start.isoformat(),
         "--log-level", "warning", "--version", world.version],
        log_path=work / "server.log", env={"NEWSDESK_ADMIN_API_KEY": ADMIN_KEY})
    server.start()
    try:
        server.wait_ready(180)
        server.wait_online_state(120)
        sweep_results: list[dict[str, Any]] = []
        chosen, source = rate, "given"
        if chosen is None:
            found, sweep_results = find_rate(server, world.users, work, sweep_steps, sweep_s)
            chosen, source = (found, "sweep") if found else (
                sweep_steps[0], "sweep: none sustained, the lowest rate used")
        swap_log: list[dict[str, Any]] = []
        done = threading.Event()

        def swapper() -> None:
            admin = {"X-API-Key": ADMIN_KEY}
            with httpx.Client(base_url=server.url, timeout=120, headers=admin) as client:
                time.sleep(settle_s)
                for i in range(swaps):
                    for action, path in (("promote", f"/v1/admin/bundles/{OTHER}/promote"),
                                         ("rollback", "/v1/admin/rollback")):
                        t = time.perf_counter()
                        r = client.post(path)
                        swap_log.append({"i": i, "action": action, "status": r.status_code,
                                         "active": r.json().get("active"),
                                         "seconds": round(time.perf_counter() - t, 3)})
                        time.sleep(settle_s / 2)
            done.set()

        thread = threading.Thread(target=swapper, daemon=True)
        trace: list[Any] = []

        async def load() -> dict[str, Any]:
            # long enough for every swap; the swapper ends first (bounded by its own timeouts)
            duration = settle_s + swaps * (settle_s + 8.0)
            task = asyncio.create_task(open_loop(server.url, "/v1/recommendations", chosen,
                                                 duration, world.users, K, trace))
            while not done.is_set() and not task.done():
                await asyncio.sleep(0.2)
            return await task

        thread.start()
        started = time.perf_counter()
        summary = asyncio.run(load())
        thread.join(timeout=60)
        versions = sorted({t[4] for t in trace if t[4]})
        failed = [t for t in trace if t[2] != "200"]
        return {
            "rate_rps": chosen, "rate_source": source,
            "sweep": [{k: r[k] for k in ("target_rps", "achieved_rps", "p99_ms", "errors",
                                         "degraded")} for r in sweep_results],
            "swaps": swaps, "swap_calls": len(swap_log),
            "swap_calls_ok": sum(1 for s in swap_log if s["status"] == 200),
            "promote_mean_s": round(sum(s["seconds"] for s in swap_log
                                        if s["action"] == "promote")
                                    / max(1, swaps), 3),
            "requests": len(trace), "failed_requests": len(failed),
            "failed_kinds": sorted({t[2] for t in failed}),
            "versions_seen": versions,
            "versions_complete": {v: bundle_complete(bundles, v) for v in versions},
            "half_loaded": sum(1 for t in trace if t[2] == "200" and not t[4]),
            "degraded_share": round(sum(t[3] for t in trace) / max(1, len(trace)), 4),
            "p99_ms": summary["p99_ms"], "p50_ms": summary["p50_ms"],
            "seconds": round(time.perf_counter() - started, 1), "swap_log": swap_log,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 swaps, a short sweep")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--swaps", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="skip the sweep")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="swap-load-"))
    world = small_world(work / "world")
    swaps = args.swaps or (3 if args.quick else 10)
    steps = [10.0, 20.0, 40.0] if args.quick else [10.0, 20.0, 40.0, 60.0, 80.0, 120.0]
    r = run_swaps(world, work, swaps=swaps, rate=args.rate, sweep_steps=steps,
                  sweep_s=3.0 if args.quick else 6.0)
    for key in ("rate_rps", "rate_source", "swaps", "swap_calls_ok", "promote_mean_s", "requests",
                "failed_requests", "versions_seen", "versions_complete", "half_loaded",
                "degraded_share", "p50_ms", "p99_ms"):
        print(f"{key:>18}: {r[key]}")
    ok = (r["failed_requests"] == 0 and r["half_loaded"] == 0
          and all(r["versions_complete"].values()) and r["swap_calls_ok"] == 2 * swaps)
    print("PASS" if ok else "FAIL")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "swap_under_load", "work": str(work),
                                         "systems": {"newsdesk": r}}, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
