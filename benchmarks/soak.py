"""Soak: a long run at 60% of capacity with events and article upserts; does anything grow?

    benchmarks/soak.py --minutes 30 [--json FILE] [--work DIR] [--rate R] [--window-s S]

One `newsdesk serve` process (the small world of `benchmarks/chaos.py`). Capacity is the
highest rate of a short sweep (`serve_load.sweep` / `max_rate`: p99 < 50 ms, no errors, at
most 1% degraded); the soak runs at 60% of it (`--rate` skips the sweep). Meanwhile: event
batches (50 clicks with ids, 4 per second) and article upserts (5 articles every 2 s, ids
cycling through a pool of 200, so the catalog's size is bounded and any growth is a leak).
The recommendation load runs in windows of `--window-s` (open loop, `serve_load.open_loop`);
every 5 s the server's RSS, open file descriptors and threads are read from /proc.

Warm-up: the first 20% of the run (at least one window), and at least the service's 10-minute
memory horizon plus a minute when the run is long enough (`warmup_s` says why). Figures after
it: `rss_growth` (last sample vs the first after warm-up; target < 5%;
`rss_growth_after_20pct` from the old 20% mark, for comparison), `p99_trend` (median p99 of
the second half of the windows over the first half's, minus 1; target within 20%) and
`p99_spread` (max |p99 of a window - median| / median: single windows, noisy on a shared machine),
`fd_growth` and `thread_growth` (last minus first after warm-up; target 0). The machine may
be shared: p99 moves with other jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos import ADMIN_KEY, World, small_world  # noqa: E402
from newsdesk.chaos.ingest import AckLedger, send_batch  # noqa: E402
from newsdesk.chaos.server import ServeProcess  # noqa: E402
from newsdesk.serving.feedback import RECENT_S  # noqa: E402


async def soak(server: ServeProcess, world: World, rate: float, minutes: float,
               window_s: float) -> dict[str, Any]:
    import httpx

    from serve_load import open_loop

    end = time.monotonic() + minutes * 60
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    windows: list[dict[str, Any]] = []
    ledger = AckLedger(prefix="soak", batch_size=50, users=world.users,
                       articles=[f"soak-art-{i}" for i in range(200)], seed=5)
    counts = {"event_batches_failed": 0, "upserts": 0, "upserts_failed": 0}
    errors: dict[str, int] = {}  # what failed upserts got (status code or transport error)

    async def sampler() -> None:
        while time.monotonic() < end:
            samples.append({"t": round(time.monotonic() - started, 1), **server.sample()})
            await asyncio.sleep(5)

    async def events(client: httpx.AsyncClient) -> None:
        while time.monotonic() < end:
            if await send_batch(client, ledger, ledger.new_batch()) != 200:
                counts["event_batches_failed"] += 1
            await asyncio.sleep(0.25)

    async def upserts(client: httpx.AsyncClient) -> None:
        i = 0
        while time.monotonic() < end:
            now = world.clock_start + timedelta(seconds=time.monotonic() - started)
            batch = [{"article_id": f"soak-art-{(i + j) % 200}",
                      "title": f"Soak story {i + j} on topic {(i + j) % 7}",
                      "abstract": "An updated story.", "category": "news",
                      "published_at": now.isoformat()} for j in range(5)]
            i += 5
            counts["upserts"] += 1
            try:
                r = await client.put("/v1/articles", json={"articles": batch})
                kind = None if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as exc:  # counted, never retried: a failure is a failure
                kind = type(exc).__name__
            if kind is not None:
                counts["upserts_failed"] += 1
                errors[kind] = errors.get(kind, 0) + 1
            await asyncio.sleep(2.0)

    async def requests() -> None:
        while time.monotonic() + window_s <= end + 1:
            r = await open_loop(server.url, "/v1/recommendations", rate, window_s,
                                world.users, 10)
            r["t_end"] = round(time.monotonic() - started, 1)
            windows.append(r)
            print(f"  t={r['t_end']:>7.1f}s p50 {r['p50_ms']:7.2f} p99 {r['p99_ms']:7.2f} ms "
                  f"errors {r['errors']} degraded {r['degraded']:.2%} | "
                  f"rss {samples[-1]['rss_mib'] if samples else 0:.1f} MiB fds "
                  f"{samples[-1]['fds'] if samples else 0:.0f} threads "
                  f"{samples[-1]['threads'] if samples else 0:.0f}", flush=True)

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await asyncio.gather(sampler(), events(client), upserts(client), requests())
    return {"samples": samples, "windows": windows, "counts": {**counts, "upsert_errors": errors},
            "acked_events": len(ledger.acked) * ledger.batch_size}


def summarise(raw: dict[str, Any], minutes: float) -> dict[str, Any]:
    samples, windows = raw["samples"], raw["windows"]
    warm_s = warmup_s(minutes, windows[0]["t_end"] if windows else 0)
    after = [s for s in samples if s["t"] >= warm_s]
    # the old warm-up (20% of the run) for comparison with earlier results
    after_20 = [s for s in samples if s["t"] >= max(minutes * 60 * 0.2,
                                                     windows[0]["t_end"] if windows else 0)]
    post = [w for w in windows if w["t_end"] > warm_s] or windows[-1:]
    first, last = after[0], after[-1]
    p99s = [w["p99_ms"] for w in post]
    median = statistics.median(p99s)
    return {
        "warmup_s": round(warm_s, 1),
        "rss_mib_at_warmup": round(first["rss_mib"], 1), "rss_mib_end": round(last["rss_mib"], 1),
        "rss_mib_max": round(max(s["rss_mib"] for s in after), 1),
        "rss_growth": round((last["rss_mib"] - first["rss_mib"]) / first["rss_mib"], 4),
        "rss_growth_after_20pct": round((last["rss_mib"] - after_20[0]["rss_mib"])
                                        / after_20[0]["rss_mib"], 4),
        "p99_ms_windows": p99s, "p99_ms_median": median,
        "p99_spread": round(max(abs(p - median) for p in p99s) / median, 4) if median else None,
        "p99_trend": _trend(p99s),
        "fd_growth": int(last["fds"] - first["fds"]),
        "thread_growth": int(last["threads"] - first["threads"]),
        "fds": [int(first["fds"]), int(last["fds"])],
        "threads": [int(first["threads"]), int(last["threads"])],
        "errors": sum(w["errors"] for w in windows),
        "requests": sum(w["requests"] for w in windows),
        "degraded_share": round(sum(w["degraded_count"] for w in windows)
                                / max(1, sum(w["requests"] for w in windows)), 4),
        **raw["counts"], "acked_events": raw["acked_events"],
    }


def warmup_s(minutes: float, first_window_end_s: float) -> float:
    """The first 20% of the run (at least one window), and at least the service's memory
    horizon plus a minute when the run is long enough to measure 5 minutes after it: applied
    event keys, served request ids and the quality monitor's slates are kept for RECENT_S
    (10 min) by design (data/recent_keys.py), so memory climbs until then at any traffic and
    is flat after (measured: Python's allocated blocks flat from minute 10 on). Growth before
    the horizon is the service filling bounded memories; growth after it is what a leak
    shows."""
    warm = max(minutes * 60 * 0.2, first_window_end_s)
    horizon = RECENT_S + 60
    if minutes * 60 >= horizon + 300:
        warm = max(warm, horizon)
    return warm


def _trend(p99s: list[float]) -> float | None:
    """Median p99 of the second half of the windows over the first half's, minus 1: a leak
    or a slowdown shows as a trend, while single windows swing with other jobs on a shared
    machine."""
    half = len(p99s) // 2
    if half == 0:
        return None
    return round(statistics.median(p99s[half:]) / statistics.median(p99s[:half]) - 1, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="2 minutes")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=None, help="skip the capacity sweep")
    parser.add_argument("--window-s", type=float, default=30.0)
    args = parser.parse_args()
    minutes = 2.0 if args.quick else args.minutes
    work = args.work or Path(tempfile.mkdtemp(prefix="soak-"))
    world = small_world(work / "world")
    server = ServeProcess(
        ["--workers", "1", "--dataset", str(world.dataset), "--bundles", str(world.bundles),
         "--state-dir", str(work / "state"), "--clock-start", world.clock_start.isoformat(),
         "--log-level", "warning"],
        log_path=work / "server.log", env={"NEWSDESK_ADMIN_API_KEY": ADMIN_KEY})
    server.start()
    try:
        server.wait_ready(180)
        server.wait_online_state(120)
        capacity, sweep = None, []
        if args.rate is None:
            from swap_under_load import find_rate

            capacity, sweep = find_rate(server, world.users, work,
                                        [10.0, 20.0, 40.0, 60.0, 80.0, 120.0], 5.0)
        rate = args.rate or round(0.6 * (capacity or 10.0), 1)
        print(f"capacity {capacity} req/s -> soak at {rate} req/s for {minutes} min")
        raw = asyncio.run(soak(server, world, rate, minutes, args.window_s))
    finally:
        server.stop()
    result = {"minutes": minutes, "rate_rps": rate, "capacity_rps": capacity,
              "capacity_note": None if capacity else "no swept rate met the target; 60% of "
              "10 req/s used", **summarise(raw, minutes)}
    for key in ("rate_rps", "capacity_rps", "warmup_s", "rss_mib_at_warmup", "rss_mib_end",
                "rss_growth", "rss_growth_after_20pct",
                "p99_ms_median", "p99_spread", "p99_trend", "fd_growth", "thread_growth", "errors",
                "degraded_share", "acked_events", "upserts", "upserts_failed"):
        print(f"{key:>18}: {result[key]}")
    ok = (result["rss_growth"] < 0.05 and abs(result["p99_trend"] or 0) <= 0.20
          and result["fd_growth"] <= 0 and result["thread_growth"] <= 0)
    print("PASS" if ok else "FAIL", "(rss < 5%, p99 trend within 20%, no fd / thread growth;"
          f" single windows' spread around the median: {result['p99_spread']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "soak", "work": str(work),
                                         "systems": {"newsdesk": {**result, "sweep": sweep,
                                                                  "samples": raw["samples"]}}},
                                        indent=2, default=str))


if __name__ == "__main__":
    main()
