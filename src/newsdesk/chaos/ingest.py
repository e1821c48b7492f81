"""Event batches with known ids, and the ledger of what the service acknowledged.

A client that wants no event lost keeps every batch it sent until it is acknowledged (a 200
from POST /v1/events, which the service sends only once the batch is durable) and sends the
unacknowledged ones again after a crash. The service de-duplicates by event id, so a batch
that was durable but whose answer was lost is counted as duplicates the second time, never
twice. `AckLedger.verify` checks that promise against the keys the durable log holds.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Batch:
    number: int
    ids: list[str]
    events: list[dict[str, Any]]
    sends: int = 0


@dataclass
class AckLedger:
    """Every batch made, and what became of it (acked, failed, resent).

    Args:
        prefix: event ids are `{prefix}-{batch}-{i}` (unique per run).
        batch_size: events per batch.
        users, articles: ids the click events name (drawn with `seed`).
    """

    prefix: str
    batch_size: int
    users: list[str]
    articles: list[str]
    seed: int = 0
    acked: dict[int, Batch] = field(default_factory=dict)
    unacked: dict[int, Batch] = field(default_factory=dict)
    accepted: int = 0  # events the service said were new
    duplicates: int = 0  # events the service said it already had
    resend_duplicates: int = 0  # of those, on a resend after a failure (durable, answer lost)
    failures: int = 0  # sends without an answer (connection reset by the kill, 5xx)
    _next: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def new_batch(self) -> Batch:
        n = self._next
        self._next += 1
        ids = [f"{self.prefix}-{n}-{i}" for i in range(self.batch_size)]
        events = [{"type": "click", "event_id": e, "user_id": self._rng.choice(self.users),
                   "article_id": self._rng.choice(self.articles)} for e in ids]
        return Batch(n, ids, events)

    def ack(self, batch: Batch, accepted: int, duplicates: int) -> None:
        self.unacked.pop(batch.number, None)
        self.acked[batch.number] = batch
        self.accepted += accepted
        self.duplicates += duplicates
        if batch.sends > 1:
            self.resend_duplicates += duplicates

    def fail(self, batch: Batch) -> None:
        self.failures += 1
        self.unacked[batch.number] = batch

    @property
    def batches_made(self) -> int:
        return self._next

    def acked_ids(self) -> set[str]:
        return {e for b in self.acked.values() for e in b.ids}

    def verify(self, logged_keys: Iterable[str]) -> dict[str, int]:
        """Compare with the keys of the durable log (every key as often as it is stored):
        `acked_events_lost` (acknowledged, not in the log), `duplicate_events` (a key stored
        more than once), `unknown_events` (in the log under our prefix, never sent)."""
        counts: dict[str, int] = {}
        for key in logged_keys:
            if key.startswith(self.prefix + "-"):
                counts[key] = counts.get(key, 0) + 1
        acked = self.acked_ids()
        sent = acked | {e for b in self.unacked.values() for e in b.ids}
        return {
            "acked_events": len(acked),
            "logged_events": len(counts),
            "acked_events_lost": sum(1 for e in acked if e not in counts),
            "duplicate_events": sum(n - 1 for n in counts.values()),
            "unknown_events": sum(1 for e in counts if e not in sent),
            "unacked_batches": len(self.unacked),
        }


async def send_batch(client: Any, ledger: AckLedger, batch: Batch) -> int:
    """POST one batch (an httpx.AsyncClient) and record the outcome; returns the status
    code (200: acknowledged; 0: no answer, e.g. the connection died with the server)."""
    import httpx

    batch.sends += 1
    try:
        r = await client.post("/v1/events", json={"events": batch.events})
    except httpx.HTTPError:
        ledger.fail(batch)
        return 0
    if r.status_code != 200:
        ledger.fail(batch)
        return r.status_code
    body = r.json()
    ledger.ack(batch, int(body["accepted"]), int(body["duplicates"]))
    return 200
