"""Crash durability of event ingest: SIGKILL a real `newsdesk serve` mid-ingest, many times.

    run_crash_ingest(work, kills=20) -> dict

Each round: start the server (or restart it on the same state dir and port), resend every
batch not yet acknowledged, ingest at full rate with `senders` concurrent clients, and SIGKILL
the server after a random `ingest_s` (uniform in the given range) while batches are in flight.
After the last kill the server is started once more, the last unacknowledged batches are sent
again, and it is stopped cleanly. Then the durable event log (the SQLite file in the state
dir) is read back and compared with the ledger: every acknowledged event must be there, once.

The online state is checked too, on the restarted server (once its rebuild from the log is
done: `serving/state_keeper.py`): for a sample of readers, the clicks
`GET /v1/users/{id}/recent` shows against the acknowledged clicks of that reader (capped like
the store): `online_clicks_missing` counts what the state lacks after the crashes,
`online_clicks_extra` what it holds twice.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from newsdesk.chaos.ingest import AckLedger, send_batch
from newsdesk.chaos.server import ServeProcess

ADMIN_KEY = "crash-admin-key-0123456789"  # a reader's clicks need the admin key

async def _ingest_then_kill(server: ServeProcess, ledger: AckLedger, senders: int,
                            kill_after_s: float | None) -> dict[str, Any]:
    """Senders post new batches until the server dies (killed after kill_after_s) or, when
    kill_after_s is None, only the resends are done."""
    import httpx

    stats = {"resent": 0, "acked_in_round": 0, "in_flight_at_kill": 0}
    limits = httpx.Limits(max_connections=senders + 4)
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, limits=limits) as client:
        for batch in sorted(ledger.unacked.values(), key=lambda b: b.number):
            stats["resent"] += 1
            if await send_batch(client, ledger, batch) != 200:
                raise RuntimeError(f"resend of batch {batch.number} failed on a live server")
        if kill_after_s is None:
            return stats
        killed = asyncio.Event()
        in_flight = 0

        async def sender() -> None:
            nonlocal in_flight
            while not killed.is_set():
                batch = ledger.new_batch()
                in_flight += 1
                ok = await send_batch(client, ledger, batch) == 200
                in_flight -= 1
                stats["acked_in_round"] += ok
                if not ok:
                    return  # the server is gone: this batch waits for the restart

        async def killer() -> None:
            await asyncio.sleep(kill_after_s)
            stats["in_flight_at_kill"] = in_flight
            server.kill()  # SIGKILL: no shutdown hook, no final snapshot
            killed.set()

        await asyncio.gather(killer(), *(sender() for _ in range(senders)))
    return stats


def logged_keys(events_db: Path) -> list[str]:
    """Every interaction key the durable log holds (as often as stored)."""
    conn = sqlite3.connect(str(events_db))
    try:
        return [k for (k,) in conn.execute("SELECT key FROM events WHERE kind='interaction'")]
    finally:
        conn.close()


def _online_check(server: ServeProcess, ledger: AckLedger, sample: int,
                  cap: int = 50) -> dict[str, Any]:
    import httpx

    expected: dict[str, set[tuple[str, str]]] = {}
    per_user: dict[str, int] = {}
    for b in ledger.acked.values():
        for e in b.events:
            per_user[e["user_id"]] = per_user.get(e["user_id"], 0) + 1
            expected.setdefault(e["user_id"], set()).add((e["event_id"], e["article_id"]))
    users = sorted(u for u, n in per_user.items() if n <= cap)[:sample]
    missing = extra = 0
    with httpx.Client(base_url=server.url, timeout=10.0,
                      headers={"X-API-Key": ADMIN_KEY}) as client:
        for user in users:
            got = client.get(f"/v1/users/{user}/recent", params={"limit": 200}).json()["clicks"]
            want = per_user[user]
            missing += max(0, want - len(got))
            extra += max(0, len(got) - want)
    return {"online_users_checked": len(users), "online_clicks_missing": missing,
            "online_clicks_extra": extra}


def run_crash_ingest(work: Path, *, kills: int = 20, senders: int = 4, batch_size: int = 200,
                     ingest_s: tuple[float, float] = (0.5, 2.0), users: int = 5000,
                     seed: int = 13, online_sample: int = 300) -> dict[str, Any]:
    """The whole run (module docstring); returns the figures and the checks."""
    work.mkdir(parents=True, exist_ok=True)
    bundles = work / "bundles"  # empty: events need no model, /readyz says so (503)
    bundles.mkdir(exist_ok=True)
    state = work / "state"
    server = ServeProcess(["--workers", "1", "--bundles", str(bundles), "--state-dir",
                           str(state), "--log-level", "warning"], log_path=work / "server.log",
                          env={"NEWSDESK_ADMIN_API_KEY": ADMIN_KEY})  # /recent is admin-only
    rng = random.Random(seed)
    ledger = AckLedger(prefix=f"crash{seed}", batch_size=batch_size,
                       users=[f"reader-{i}" for i in range(users)],
                       articles=[f"art-{i}" for i in range(500)], seed=seed)
    rounds = []
    started = time.perf_counter()
    try:
        for k in range(kills):
            server.start()
            ready_s = server.wait_ready(120, need_model=False)
            t = time.perf_counter()
            acked_before = len(ledger.acked)
            stats = asyncio.run(_ingest_then_kill(server, ledger, senders,
                                                  rng.uniform(*ingest_s)))
            elapsed = time.perf_counter() - t
            stats.update(kill=k + 1, restart_s=round(ready_s, 2), round_s=round(elapsed, 2),
                         unacked_after_kill=len(ledger.unacked),
                         events_per_s=round((len(ledger.acked) - acked_before) * batch_size
                                            / max(elapsed, 1e-9)))
            rounds.append(stats)
        server.start()
        server.wait_ready(120, need_model=False)
        final = asyncio.run(_ingest_then_kill(server, ledger, senders, None))
        rebuild_wait_s = server.wait_online_state(120)
        online = _online_check(server, ledger, online_sample)
        online["online_state"] = server.readyz().get("online_state")
        exit_code = server.stop()
    finally:
        if server.alive():
            server.kill()
    checks = ledger.verify(logged_keys(state / "events.db"))
    return {
        "kills": kills, "senders": senders, "batch_size": batch_size,
        "batches": ledger.batches_made, "send_failures": ledger.failures,
        "resent_batches": sum(r["resent"] for r in rounds) + final["resent"],
        "durable_but_unacked_events": ledger.resend_duplicates,
        "accepted": ledger.accepted, "duplicates_reported": ledger.duplicates,
        **checks, **online, "final_exit_code": exit_code,
        "final_rebuild_wait_s": round(rebuild_wait_s, 2),
        "mean_restart_s": round(sum(r["restart_s"] for r in rounds) / max(1, len(rounds)), 2),
        "mean_events_per_s": round(sum(r["events_per_s"] for r in rounds)
                                   / max(1, len(rounds))),
        "seconds": round(time.perf_counter() - started, 1), "rounds": rounds,
    }
