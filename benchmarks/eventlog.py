"""Benchmark the storage backends: durable event-log appends and online-store throughput.

    python benchmarks/eventlog.py [--quick] [--json FILE]

Event log (SQLite, WAL, synchronous=FULL): events/s *acknowledged durably* — `append` has
returned, so the batch's COMMIT (and its fsync) is done — for batch sizes 1, 100 and 1000 from
one writer, and for 8 concurrent writers (where group commit shares fsyncs between batches).
Records are pre-built `Interaction` models (the API validates JSON before appending).

Event log on Redis Streams (if `redis-server` is installed): the same rows against a loopback
server twice: without persistence ("acknowledged" = executed by Redis, survives any replica
crash) and with `appendonly yes, appendfsync always` (Redis fsyncs before answering: the
SQLite FULL equivalent). Plus `append_then_applied`: batches of 100 appended, then waited for
until a running consumer (`StreamApplier`) has applied them to the Redis online store.

Online store (memory, redis if `redis-server` is installed): events/s through `record_events`
in batches of 100 (80 impressions of 10 articles + 20 clicks), and reads/s of
`article_stats` (100 ids), `user_clicks` and `trending(20)` over 10k live articles.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from newsdesk.data.eventlog import EventLog
from newsdesk.data.eventlog.sqlite import SQLiteEventLog
from newsdesk.data.schema import Impression, Interaction, InteractionType
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.online_store import OnlineStore

T0 = datetime(2024, 6, 1, tzinfo=UTC)
N_ARTICLES = 10_000
N_USERS = 5_000


def clicks(prefix: str, n: int) -> list[Interaction]:
    return [Interaction(event_id=f"{prefix}-{i}", type=InteractionType.CLICK, user_id=f"u{i % 97}",
                        article_id=f"a{i % 1000}", timestamp=T0 + timedelta(seconds=i))
            for i in range(n)]


def timed_rate(work: Callable[[], int], seconds: float) -> tuple[float, int]:
    """Run `work` (returns items done) until `seconds` pass; returns (items/s, items)."""
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += work()
    return done / (time.perf_counter() - started), done


def bench_sqlite(directory: Path, seconds: float) -> dict[str, Any]:
    return bench_appends(lambda name: SQLiteEventLog(directory / f"{name}.db"), "sqlite",
                         seconds)


def bench_appends(make_log: Callable[[str], EventLog], label: str, seconds: float
                  ) -> dict[str, Any]:
    """events/s acknowledged by `append`, by batch size, 1 writer and 8 writers."""
    out: dict[str, Any] = {}
    for batch in (1, 100, 1000):
        log = make_log(f"single-{batch}")
        pool = clicks(f"b{batch}", 200_000 if batch > 1 else 20_000)
        cursor = [0]

        def work(log: EventLog = log, pool: list[Interaction] = pool,
                 batch: int = batch, cursor: list[int] = cursor) -> int:
            start = cursor[0] % (len(pool) - batch)
            cursor[0] += batch
            return log.append(pool[start:start + batch]).accepted or batch

        rate, done = timed_rate(work, seconds)
        latency_ms = 1000.0 * batch / rate
        out[f"append_batch{batch}_events_per_s"] = round(rate)
        out[f"append_batch{batch}_ms_per_batch"] = round(latency_ms, 3)
        print(f"  {label:<7s} batch={batch:<5d} 1 writer : {rate:>10,.0f} events/s  "
              f"({latency_ms:.2f} ms per acknowledged batch, {done:,} events)")
        log.close()
    for batch in (1, 100):
        log = make_log(f"concurrent-{batch}")
        threads_n = 8
        pools = [clicks(f"t{k}-b{batch}", 10_000 if batch == 1 else 50_000)
                 for k in range(threads_n)]
        totals = [0] * threads_n
        stop = time.perf_counter() + seconds

        def writer(k: int, log: EventLog, batch: int, pool: list[Interaction],
                   totals: list[int], stop: float) -> None:
            i = 0
            while time.perf_counter() < stop:
                start = (i * batch) % (len(pool) - batch)
                log.append(pool[start:start + batch])
                totals[k] += batch
                i += 1

        threads = [threading.Thread(target=writer, args=(k, log, batch, pools[k], totals, stop))
                   for k in range(threads_n)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = sum(totals) / (time.perf_counter() - started)
        stored = log.count()
        out[f"append_batch{batch}_8writers_events_per_s"] = round(rate)
        print(f"  {label:<7s} batch={batch:<5d} 8 writers: {rate:>10,.0f} events/s "
              f"({stored:,} distinct stored)")
        log.close()
    return out


def bench_redis_streams(url: str, seconds: float, label: str) -> dict[str, Any]:
    """The append rows on a Redis Stream log, then append + applied by a running consumer."""
    from newsdesk.data.eventlog.redis_streams import RedisStreamEventLog
    from newsdesk.features.redis_store import RedisOnlineStore
    from newsdesk.serving.event_consumer import StreamApplier

    out = bench_appends(lambda name: RedisStreamEventLog(url, prefix=f"bench-{name}:"), label,
                        seconds)
    log = RedisStreamEventLog(url, prefix="bench-applied:")
    store = RedisOnlineStore(url, prefix="bench-store:", socket_timeout_s=1.0)
    applier = StreamApplier(log, store).start()
    batches = event_batches(random.Random(1), 4000)
    cursor = [0]
    waits: list[float] = []

    def work() -> int:
        _, seqs = applier.append(batches[cursor[0] % len(batches)])
        cursor[0] += 1
        started = time.perf_counter()
        while not applier.is_applied(seqs):
            time.sleep(0.0005)
        waits.append(time.perf_counter() - started)
        return 100

    try:
        rate, done = timed_rate(work, seconds)
    finally:
        applier.stop()
        store.close()
        log.close()
    waits.sort()
    out["append_then_applied_batch100_events_per_s"] = round(rate)
    out["applied_after_append_p50_ms"] = round(1000 * waits[len(waits) // 2], 3)
    out["applied_after_append_p99_ms"] = round(1000 * waits[int(len(waits) * 0.99)], 3)
    print(f"  {label:<7s} batch=100   append, then applied by the consumer: {rate:>8,.0f} "
          f"events/s; applied {out['applied_after_append_p50_ms']} ms (p50) / "
          f"{out['applied_after_append_p99_ms']} ms (p99) after the ack ({done:,} events)")
    return out


def event_batches(rng: random.Random, n_batches: int) -> list[list[Impression | Interaction]]:
    batches = []
    for b in range(n_batches):
        batch: list[Impression | Interaction] = []
        ts = T0 + timedelta(seconds=b)
        for j in range(100):
            user = f"u{rng.randrange(N_USERS)}"
            if j % 5 == 4:
                batch.append(Interaction(event_id=f"e{b}-{j}", type=InteractionType.CLICK,
                                         user_id=user, timestamp=ts,
                                         article_id=f"a{rng.randrange(N_ARTICLES)}"))
            else:
                batch.append(Impression(request_id=f"r{b}-{j}", user_id=user, timestamp=ts,
                                        article_ids=[f"a{rng.randrange(N_ARTICLES)}"
                                                     for _ in range(10)]))
        batches.append(batch)
    return batches


def bench_store(store: OnlineStore, seconds: float, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    batches = event_batches(rng, 200)
    # warm the store so every article and most users exist (10k live articles)
    for i in range(0, N_ARTICLES, 500):
        store.record_clicks("warm", [f"a{j}" for j in range(i, i + 500)], T0.timestamp())
    cursor = [0]

    def write() -> int:
        store.record_events(batches[cursor[0] % len(batches)])
        cursor[0] += 1
        return 100

    now = (T0 + timedelta(hours=1)).timestamp()
    ids = [f"a{rng.randrange(N_ARTICLES)}" for _ in range(100)]
    out: dict[str, Any] = {}
    rate, _ = timed_rate(write, seconds)
    out["record_events_batch100_events_per_s"] = round(rate)
    rate, _ = timed_rate(lambda: len(store.article_stats(ids, now)) and 1, seconds / 2)
    out["article_stats_100ids_calls_per_s"] = round(rate)
    rate, _ = timed_rate(lambda: store.user_clicks("u1") is not None, seconds / 2)
    out["user_clicks_calls_per_s"] = round(rate)
    rate, _ = timed_rate(lambda: len(store.trending(20, now)) and 1, seconds / 2)
    out["trending20_calls_per_s"] = round(rate)
    rate, _ = timed_rate(lambda: len(store.trending(20, now, candidates=ids[:50])) and 1,
                         seconds / 2)
    out["trending20_among50_calls_per_s"] = round(rate)
    for key, value in out.items():
        print(f"    {key:<36s} {value:>12,}")
    return out


def start_redis(workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (< 1 minute)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 6.0
    results: dict[str, Any] = {
        "benchmark": "eventlog", "quick": args.quick, "seconds_per_case": seconds,
        "python": sys.version.split()[0], "platform": platform.platform(), "systems": {},
    }
    with tempfile.TemporaryDirectory(prefix="nd-bench-") as tmp:
        root = Path(tmp)
        print("event log (durable acknowledgements):")
        results["systems"]["sqlite_eventlog"] = bench_sqlite(root, seconds)
        print("online store: memory")
        results["systems"]["memory_store"] = bench_store(MemoryOnlineStore(), seconds)
        started = start_redis(root)
        if started is None:
            print("online store: redis skipped (no redis-server binary)")
        else:
            proc, url = started
            try:
                from newsdesk.features.redis_store import RedisOnlineStore

                print(f"online store: redis ({url}, loopback)")
                store = RedisOnlineStore(url, socket_timeout_s=1.0)
                results["systems"]["redis_store"] = bench_store(store, seconds)
                store.close()
                print("event log: redis streams, no persistence (acknowledged = in Redis)")
                results["systems"]["redis_streams_eventlog"] = bench_redis_streams(
                    url, seconds, "redis")
            finally:
                proc.kill()
                proc.wait()
            aof_dir = root / "aof"
            aof_dir.mkdir()
            started = start_redis(aof_dir, "--appendonly", "yes", "--appendfsync", "always")
            if started is not None:
                proc, url = started
                try:
                    print("event log: redis streams, appendfsync always (fsync before the ack)")
                    results["systems"]["redis_streams_aof_always_eventlog"] = (
                        bench_redis_streams(url, seconds, "r-aof"))
                finally:
                    proc.kill()
                    proc.wait()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
