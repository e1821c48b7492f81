"""Fault injection under load with real components: Redis killed, paused, slow; the event
log's disk full; a corrupt model bundle.

    benchmarks/chaos.py [--quick] [--json FILE] [--work DIR] [--faults a,b] [--rate R]

A small simulated world and a bundle trained on it (hashing embedder: seconds); one
`newsdesk serve` process (`newsdesk.chaos.server`) with its online store in a redis-server
this script runs (`newsdesk.chaos.redis`, no persistence) reached through a TCP proxy that can
add latency (`newsdesk.chaos.proxy`), and the SQLite event log in its state dir. For each fault:
open-loop recommendation load (`serve_load.open_loop`, every request traced), event batches
with ids every 0.2 s (`newsdesk.chaos.ingest`; what is not acknowledged is sent again), and
/readyz polled every 0.1 s; the fault starts after `warm` s, lasts `hold` s, and the load runs
`after` s more. Faults:

* redis_killed: SIGKILL; it comes back EMPTY after `hold` s (restart without persistence):
  the service must rebuild the online state from the dataset and the event log by itself;
* redis_paused: SIGSTOP for `hold` s, then SIGCONT;
* redis_slow: the proxy adds `--slow-ms` (default 10) per direction per chunk;
* eventlog_disk_full: RLIMIT_FSIZE of the server lowered to 4 KiB (`newsdesk.chaos.disk`,
  why not a tmpfs: see there), then restored;
* bundle_corrupted: a newer bundle with one file corrupted on disk: promoting it (hot swap)
  must be refused while the good one keeps serving; then a restart must serve the good one.

Per fault: `answered_share` (recommendations answered 200, whole run), `answered_share_fault`
and `degraded_share_fault` (during the fault), `server_errors` (5xx to recommendations; 5xx
other than 503 to events: a 503 to events means "not acknowledged, send again"),
`events_refused`, `acked_events_lost` (acknowledged ids missing from the durable log),
`recovery_s` (from the end of the fault to the last moment anything was still wrong: a
/readyz sample not ready or not whole -- its checks, the breaker, the online state --, a
0.5 s bin of requests with an error, an event batch not acknowledged),
`personalised_again_s` (also until the degraded share of 0.5 s bins is back under
max(5%, 2x the warm-up's), tested only when the warm-up's share was under 25%: on a starved
machine the model's own timeouts degrade answers without any fault, so this one is noisy),
`fault_on_readyz`, `fault_in_metrics` (a slow store: /readyz's `slow` and the ping's round
trip gauge over the service's `slow_store_ms`); to tell a slow service from a stalled machine,
`driver_stalls` (moments this script's own event loop ran > 0.5 s late: its timeouts then
fire on a server that may be fine), `stage_failures_after_fault` (why answers were degraded
after the fault: shed, timeout, circuit_open) and `after_fault_bins`. Targets:
answered_share 1.0 where the API can answer, server_errors 0, acked_events_lost 0,
recovery_s <= 5.

The machine may be shared with other work: latencies and recovery times are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from newsdesk.chaos.disk import DiskFull  # noqa: E402
from newsdesk.chaos.ingest import AckLedger, send_batch  # noqa: E402
from newsdesk.chaos.proxy import ProxyProcess  # noqa: E402
from newsdesk.chaos.redis import RedisServer  # noqa: E402
from newsdesk.chaos.server import NEWSDESK, ServeProcess  # noqa: E402

ADMIN_KEY = "chaos-admin-key-0123456789"
FAULTS = ("redis_killed", "redis_paused", "redis_slow", "eventlog_disk_full",
          "bundle_corrupted")
RECOVERY_TARGET_S = 5.0


# -- the world -----------------------------------------------------------------------------
@dataclass
class World:
    dataset: Path
    bundles: Path
    version: str
    clock_start: datetime
    users: list[str]


def small_world(root: Path) -> World:
    """A 300-reader simulated day and a bundle trained on it (hashing embedder)."""
    from newsdesk.data.dataset import Dataset

    dataset, bundles = root / "dataset", root / "bundles"
    if not (dataset / "manifest.json").exists():
        subprocess.run([*NEWSDESK, "simulate", "--seed", "1", "--users", "300", "--days", "1",
                        "--impressions-per-day", "3000", "--articles-per-day", "200",
                        "--out", str(dataset)], check=True, capture_output=True, timeout=300)
    if not any(bundles.glob("*/manifest.json")):
        code = ("import sys; from threadpoolctl import threadpool_limits;"
                "from newsdesk.pipelines.train import RankerConfig, TrainConfig, train;"
                "cfg = TrainConfig(embedder='hashing', ranker=RankerConfig(num_boost_round=20,"
                " min_data_in_leaf=5));"
                "threadpool_limits(1, 'blas');"
                "print(train(sys.argv[1], sys.argv[2], cfg))")
        subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(dataset), str(bundles)],
                       check=True, capture_output=True, timeout=600)
    version = json.loads(next(bundles.glob("*/manifest.json")).read_text())["version"]
    ds = Dataset(dataset)
    end = ds.read("impressions")["timestamp"].max()
    users = ds.read("interactions")["user_id"].unique().sort().to_list()
    return World(dataset, bundles, version, end + timedelta(minutes=1), users)


def corrupt_copy(bundles: Path, good: str, version: str) -> Path:
    """A copy of bundle `good` under a newer `version` with one file corrupted on disk (the
    manifest's hashes stay those of the good files)."""
    src = bundles / good
    dest = bundles / version
    shutil.copytree(src, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.update(version=version, created_at="2999-01-01T00:00:00+00:00")
    (dest / "manifest.json").write_text(json.dumps(manifest))
    victim = dest / "ranker.txt"
    data = bytearray(victim.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = b"\x00" * 64  # a torn write in the middle of the model
    victim.write_bytes(bytes(data))
    return dest


# -- one run -------------------------------------------------------------------------------
@dataclass
class Rig:
    world: World
    work: Path
    redis: RedisServer
    proxy: ProxyProcess | None
    server: ServeProcess
    state: Path

    @classmethod
    def start(cls, world: World, work: Path, name: str, *, via_proxy: bool = False) -> Rig:
        """via_proxy: the service reaches Redis through the latency proxy (the slow-Redis
        fault only: the proxy's own cost stays out of the other faults' figures)."""
        redis = RedisServer(work / f"redis-{name}")
        redis.start()
        proxy = ProxyProcess(redis.port) if via_proxy else None
        redis_port = proxy.port if proxy is not None else redis.port
        bundles = work / f"bundles-{name}"
        if not bundles.exists():
            shutil.copytree(world.bundles, bundles)
        server = ServeProcess(
            ["--workers", "1", "--dataset", str(world.dataset), "--bundles", str(bundles),
             "--state-dir", str(work / f"state-{name}"), "--redis-url",
             f"redis://127.0.0.1:{redis_port}/0", "--clock-start",
             world.clock_start.isoformat(), "--log-level", "warning"],
            log_path=work / f"server-{name}.log",
            env={"NEWSDESK_ADMIN_API_KEY": ADMIN_KEY})
        server.start()
        server.wait_ready(120)
        server.wait_online_state(120)
        return cls(world, work, redis, proxy, server, work / f"state-{name}")

    def close(self) -> None:
        self.server.stop()
        if self.proxy is not None:
            self.proxy.stop()
        self.redis.kill()


def _slow_store_ms() -> float:
    """The service's own line between a slow and a normal online store (its default)."""
    from newsdesk.serving.settings import ServeSettings

    return float(ServeSettings.model_fields["slow_store_ms"].default)


def scrape_faults(url: str) -> dict[str, float]:
    """The fault gauges of /metrics: dependency_up per dependency, the breaker's state."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return out
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "newsdesk_dependency_up":
                out[f"up:{s.labels['dependency']}"] = s.value
            elif s.name == "newsdesk_dependency_roundtrip_seconds":
                out[f"roundtrip_ms:{s.labels['dependency']}"] = round(s.value * 1000, 2)
            elif s.name == "newsdesk_circuit_breaker_open":
                out[f"breaker:{s.labels.get('name', '')}"] = s.value
            elif s.name == "newsdesk_online_state_rebuilds_total":
                out[f"rebuilds:{s.labels['reason']}"] = s.value
            elif s.name == "newsdesk_pipeline_stage_failures_total":
                out[f"stage_failures:{s.labels['stage']}:{s.labels['reason']}"] = s.value
            elif s.name == "newsdesk_model_swaps_total" and s.labels.get(
                    "action") == "refused":
                out["model_refused"] = s.value
    return out


@dataclass
class Timeline:
    warm: float
    hold: float
    after: float

    @property
    def total(self) -> float:
        return self.warm + self.hold + self.after


@dataclass
class Observed:
    readyz: list[tuple[float, int, bool, dict[str, Any]]] = field(default_factory=list)
    event_fail_times: list[float] = field(default_factory=list)
    events_refused: int = 0
    events_5xx_other: int = 0
    metrics_during: dict[str, float] = field(default_factory=dict)
    metrics_at_end: dict[str, float] = field(default_factory=dict)  # when the fault ended
    # (time, seconds) where this driver's own event loop ran late by > 0.5 s: the machine
    # stalled the load generator itself, whose timeouts then fire on a server that is fine
    driver_stalls: list[tuple[float, float]] = field(default_factory=list)
    metrics_after: dict[str, float] = field(default_factory=dict)  # when the load ended


def _readyz_whole(body: dict[str, Any]) -> bool:
    return (body.get("status") == "ready" and all(body.get("checks", {}).values())
            and "breaker" not in body
            and body.get("online_state", {}).get("state", "ok") == "ok")


async def drive(rig: Rig, tl: Timeline, inject: Any, end: Any, rate: float,
                ledger: AckLedger) -> tuple[list[Any], Observed, dict[str, Any]]:
    import httpx

    from serve_load import open_loop

    trace: list[Any] = []
    obs = Observed()
    url = rig.server.url
    t0 = time.perf_counter() + 0.1  # open_loop's own t0 is within ms of this

    def now() -> float:
        return time.perf_counter() - t0

    async def readyz_poller(client: httpx.AsyncClient) -> None:
        while now() < tl.total + 0.5:
            try:
                r = await client.get("/readyz", timeout=2)
                body = r.json()
                obs.readyz.append((now(), r.status_code, _readyz_whole(body), body))
            except (httpx.HTTPError, ValueError):
                obs.readyz.append((now(), 0, False, {}))
            await asyncio.sleep(0.1)

    async def stall_watch() -> None:
        while now() < tl.total + 0.5:
            before = now()
            await asyncio.sleep(0.05)
            late = now() - before - 0.05
            if late > 0.5:
                obs.driver_stalls.append((round(before, 2), round(late, 2)))

    async def events(client: httpx.AsyncClient) -> None:
        while now() < tl.total:
            for batch in [*sorted(ledger.unacked.values(), key=lambda b: b.number),
                          ledger.new_batch()]:
                status = await send_batch(client, ledger, batch)
                if status != 200:
                    obs.event_fail_times.append(now())
                    obs.events_refused += status == 503
                    obs.events_5xx_other += status >= 500 and status != 503
            await asyncio.sleep(0.2)

    async def faults(client: httpx.AsyncClient) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, tl.warm - now()))
        info = await asyncio.to_thread(inject) or {}
        info["injected_at"] = now()
        await asyncio.sleep(max(0.0, tl.warm + tl.hold / 2 - now()))
        obs.metrics_during = await asyncio.to_thread(scrape_faults, url)
        await asyncio.sleep(max(0.0, tl.warm + tl.hold - now()))
        info.update(await asyncio.to_thread(end) or {})
        info["ended_at"] = now()
        obs.metrics_at_end = await asyncio.to_thread(scrape_faults, url)
        return info

    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        results = await asyncio.gather(
            open_loop(url, "/v1/recommendations", rate, tl.total, rig.world.users, 10, trace),
            readyz_poller(client), events(client), faults(client), stall_watch())
        obs.metrics_after = await asyncio.to_thread(scrape_faults, url)
        # the load's own origin comes after its warm-up requests: put its trace on ours
        shift = results[0]["t0_perf"] - t0
        trace[:] = [(s + shift, d + shift, *rest) for s, d, *rest in trace]
        # what the fault left unacknowledged goes again now (bounded)
        deadline = time.monotonic() + 30
        while ledger.unacked and time.monotonic() < deadline:
            for batch in sorted(ledger.unacked.values(), key=lambda b: b.number):
                await send_batch(client, ledger, batch)
            await asyncio.sleep(0.2)
    return trace, obs, results[3]


def analyse(trace: list[Any], obs: Observed, tl: Timeline, info: dict[str, Any]
            ) -> dict[str, Any]:
    fault_start, fault_end = info["injected_at"], info["ended_at"]
    total = len(trace)
    ok = [t for t in trace if t[2] == "200"]
    during = [t for t in trace if fault_start <= t[0] < fault_end]
    warm = [t for t in trace if t[0] < fault_start]
    warm_degraded = sum(t[3] for t in warm) / max(1, len(warm))
    # degraded answers say "fallback" only when the warm-up was mostly personalised: on a
    # starved machine (the model's timeouts shed most requests already) they are no signal
    threshold = max(0.05, 2 * warm_degraded) if warm_degraded < 0.25 else 1.01
    server_errors = sum(1 for t in trace if t[2].isdigit() and int(t[2]) >= 500)
    # recovery: the last moment after the fault's end where something was still wrong
    last_bad, cause = fault_end, None
    last_degraded = fault_end
    bins: dict[int, list[Any]] = {}
    for t in trace:
        if t[0] >= fault_end:
            bins.setdefault(int((t[0] - fault_end) / 0.5), []).append(t)
    for i, rows in bins.items():
        errors = sum(1 for r in rows if r[2] != "200")
        degraded = sum(r[3] for r in rows) / len(rows)
        if errors and fault_end + (i + 1) * 0.5 > last_bad:
            last_bad = fault_end + (i + 1) * 0.5
            cause = f"requests: {errors} errors in a 0.5 s bin"
        if degraded > threshold:
            last_degraded = max(last_degraded, fault_end + (i + 1) * 0.5)
    for t, status, whole, body in obs.readyz:
        if t >= fault_end and not whole and t > last_bad:
            last_bad = t
            cause = f"readyz {status}: " + json.dumps(
                {k: body.get(k) for k in ("status", "checks", "breaker", "online_state")})[:300]
    for t in obs.event_fail_times:
        if t >= fault_end and t > last_bad:
            last_bad, cause = t, "an event batch not acknowledged"
    seen_readyz = any((not whole) or "model_refused" in body or "slow" in body
                      for t, _, whole, body in obs.readyz if fault_start <= t <= fault_end + 0.5)
    m = obs.metrics_during
    seen_metrics = any(v == 0.0 for k, v in m.items() if k.startswith("up:")) or any(
        v == 1.0 for k, v in m.items() if k.startswith("breaker:")) or m.get(
        "model_refused", 0) > 0 or m.get("roundtrip_ms:online_store", 0) > _slow_store_ms()
    return {
        "requests": total,
        "answered_share": round(len(ok) / max(1, total), 4),
        "answered_share_fault": round(sum(1 for t in during if t[2] == "200")
                                      / max(1, len(during)), 4),
        "degraded_share_fault": round(sum(t[3] for t in during) / max(1, len(during)), 4),
        "degraded_share_warm": round(warm_degraded, 4),
        "server_errors": server_errors + obs.events_5xx_other,
        "events_refused": obs.events_refused,
        "error_kinds": _kinds(trace),
        "recovery_s": round(last_bad - fault_end, 2),
        "recovery_last_wrong": cause,
        # personalised again: degraded answers back to the warm-up's share (noisy when the
        # machine is starved: the model's own timeouts degrade answers without any fault)
        "personalised_again_s": round(max(last_bad, last_degraded) - fault_end, 2),
        "fault_on_readyz": seen_readyz,
        "fault_in_metrics": seen_metrics,
        "metrics_during_fault": m,
        # why answers were degraded after the fault: pipeline stage failures by reason
        # (timeout, shed, circuit_open, ...) between the fault's end and the load's end
        "stage_failures_after_fault": {
            k.split(":", 1)[1]: obs.metrics_after[k] - obs.metrics_at_end.get(k, 0.0)
            for k in obs.metrics_after if k.startswith("stage_failures:")
            and obs.metrics_after[k] > obs.metrics_at_end.get(k, 0.0)},
        # degraded share and errors per 0.5 s after the fault's end (where recovery went)
        "driver_stalls": obs.driver_stalls,
        "after_fault_bins": [
            [round(0.5 * i, 1), len(rows), sum(1 for r in rows if r[2] != "200"),
             round(sum(r[3] for r in rows) / len(rows), 2)]
            for i, rows in sorted(bins.items())],
        "fault_s": round(fault_end - fault_start, 2),
    }


def _kinds(trace: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trace:
        if t[2] != "200":
            out[t[2]] = out.get(t[2], 0) + 1
    return out


def _events_outcome(rig: Rig, ledger: AckLedger) -> dict[str, Any]:
    from newsdesk.chaos.crash import logged_keys

    checks = ledger.verify(logged_keys(rig.state / "events.db"))
    return {"acked_events": checks["acked_events"],
            "acked_events_lost": checks["acked_events_lost"],
            "duplicate_events": checks["duplicate_events"],
            "events_not_acked_in_the_end": checks["unacked_batches"] * ledger.batch_size,
            "event_send_failures": ledger.failures}


def online_missing(rig: Rig, ledger: AckLedger, since_batch: int) -> dict[str, int]:
    """Clicks acknowledged from batch `since_batch` on (the fault and after) that the online
    state does not show: the rebuild replays the log, so none should be missing."""
    import httpx

    want: dict[str, int] = {}
    for b in ledger.acked.values():
        if b.number >= since_batch:
            for e in b.events:
                want[e["user_id"]] = want.get(e["user_id"], 0) + 1
    missing = unreadable = 0
    with httpx.Client(base_url=rig.server.url, timeout=10,
                      headers={"X-API-Key": ADMIN_KEY}) as client:  # /recent is admin-only
        for user, n in want.items():
            for _ in range(20):  # a 503 (the store's circuit open a moment): ask again
                r = client.get(f"/v1/users/{user}/recent", params={"limit": 200})
                if r.status_code == 200:
                    break
                time.sleep(0.1)
            if r.status_code != 200:
                unreadable += 1
                continue
            recent = [c for c in r.json()["clicks"]
                      if c["article_id"].startswith("chaos-art-")]
            missing += max(0, min(n, 50) - len(recent))
    return {"online_users_checked": len(want) - unreadable, "online_clicks_missing": missing}


def run_fault(world: World, work: Path, fault: str, tl: Timeline, rate: float,
              slow_ms: float) -> dict[str, Any]:
    rig = Rig.start(world, work, fault, via_proxy=fault == "redis_slow")
    ledger = AckLedger(prefix=f"chaos-{fault}", batch_size=20, users=world.users[:100],
                       articles=[f"chaos-art-{i}" for i in range(50)], seed=3)
    disk = DiskFull(rig.server.pid)
    corrupt_version = "v-corrupt-newer"
    extra: dict[str, Any] = {}
    first_fault_batch = [0]

    def inject() -> dict[str, Any]:
        first_fault_batch[0] = ledger.batches_made
        if fault == "redis_killed":
            rig.redis.kill()
        elif fault == "redis_paused":
            rig.redis.pause()
        elif fault == "redis_slow":
            assert rig.proxy is not None
            rig.proxy.set_delay(slow_ms / 1000)
        elif fault == "eventlog_disk_full":
            disk.fill()
            return {"disk_full_mode": disk.mode}
        elif fault == "bundle_corrupted":
            import httpx

            corrupt_copy(Path(rig.server.args[rig.server.args.index("--bundles") + 1]),
                         world.version, corrupt_version)
            r = httpx.post(f"{rig.server.url}/v1/admin/bundles/{corrupt_version}/promote",
                           headers={"X-API-Key": ADMIN_KEY}, timeout=60)
            return {"promote_status": r.status_code,
                    "promote_error": r.json().get("message", "")[:200]}
        return {}

    def end() -> dict[str, Any]:
        if fault == "redis_killed":
            rig.redis.start()  # the same port, EMPTY (no persistence)
        elif fault == "redis_paused":
            rig.redis.resume()
        elif fault == "redis_slow":
            assert rig.proxy is not None
            rig.proxy.set_delay(0.0)
        elif fault == "eventlog_disk_full":
            disk.free()
        return {}

    try:
        trace, obs, info = asyncio.run(drive(rig, tl, inject, end, rate, ledger))
        result = analyse(trace, obs, tl, info)
        result.update({k: v for k, v in info.items() if k not in ("injected_at", "ended_at")})
        versions = sorted({t[4] for t in trace if t[4]})
        result["model_versions_served"] = versions
        result.update(_events_outcome(rig, ledger))
        result["online_state"] = rig.server.readyz().get("online_state")
        if fault in ("redis_killed", "redis_paused"):
            rig.server.wait_online_state(30)
            result.update(online_missing(rig, ledger, first_fault_batch[0]))
        if fault == "bundle_corrupted":
            result["hot_swap_refused"] = (info.get("promote_status") == 409
                                          and versions == [world.version])
            rig.server.stop()  # a restart with the corrupt bundle the newest on disk
            t = time.perf_counter()
            rig.server.start()
            rig.server.wait_ready(120)
            result["restart_s"] = round(time.perf_counter() - t, 2)
            result["restart_serves_version"] = rig.server.readyz().get("model_version")
            result["restart_refused_corrupt"] = result["restart_serves_version"] == world.version
        result.update(extra)
        result["server_log_tail"] = rig.server.log_tail(600)
        return result
    finally:
        disk.free()
        rig.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--rate", type=float, default=None, help="recommendations/s")
    parser.add_argument("--slow-ms", type=float, default=10.0)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="chaos-"))
    tl = Timeline(2.0, 3.0, 7.0) if args.quick else Timeline(5.0, 10.0, 15.0)
    rate = args.rate or (30.0 if args.quick else 60.0)
    t = time.perf_counter()
    world = small_world(work / "world")
    print(f"world ready in {time.perf_counter() - t:.1f} s (bundle {world.version})")
    results: dict[str, Any] = {}
    for fault in args.faults.split(","):
        if fault not in FAULTS:
            raise SystemExit(f"--faults: unknown fault {fault!r}; choose from {FAULTS}")
        r = run_fault(world, work, fault, tl, rate, args.slow_ms)
        results[fault] = r
        print(f"{fault:>20}: answered {r['answered_share']:.3f} (fault "
              f"{r['answered_share_fault']:.3f}, degraded {r['degraded_share_fault']:.2f}), "
              f"5xx {r['server_errors']}, acked lost {r['acked_events_lost']}, recovery "
              f"{r['recovery_s']} s (personalised again {r['personalised_again_s']} s), "
              f"readyz {r['fault_on_readyz']}, metrics "
              f"{r['fault_in_metrics']}, driver stalls {r['driver_stalls'] or 'none'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "chaos", "quick": args.quick, "rate_rps": rate,
            "timeline_s": {"warm": tl.warm, "fault": tl.hold, "after": tl.after},
            "systems": {"newsdesk": results}}, indent=2, default=str))


if __name__ == "__main__":
    main()
