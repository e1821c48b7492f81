"""Negative feedback: a reader's "not interested" (a `dismiss` interaction), kept in the store.

What a dismissal does (serving): the article never comes back to that reader (the model's
candidates, the trending fallback and the latest-news fallback all skip it), and for a
decaying period (`DEMOTION_HALF_LIFE_H`) it lowers the reader's candidates that resemble it:
same category, or close in the content embedding (the same story and entities, where the text
carries them). The demotion is a rule after the ranker, like the surface's re-ranking rules,
so training is unchanged: the ranker's features and labels know nothing of it.

Storage: one store marker per reader (`dismissed:<user_id>`, JSON, the newest `MAX_KEPT`), as
interest seeds are kept (`features.interest_seeds`): every worker and replica sharing the store
sees it, the embedded memory store snapshots it, and replaying the durable event log (the state
keeper's rebuild, the Redis Streams consumer) applies it again idempotently (merged by article
id, newest kept). A read-modify-write: two dismissals by one reader in the same few
milliseconds on two workers can lose one of them; the event log keeps both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from newsdesk.data.schema import InteractionType

if TYPE_CHECKING:
    from newsdesk.features.online_store import OnlineStore

PREFIX = "dismissed:"
MAX_KEPT = 50  # a reader's newest dismissals
DEMOTION_HALF_LIFE_H = 24.0  # how fast a dismissal's pull on similar items fades
DEMOTION_STRENGTH = 2.0  # in standard deviations of the request's ranker scores
SAME_CATEGORY_SIMILARITY = 0.5  # a same-category item counts as this similar at least


@dataclass(frozen=True)
class Dismissal:
    article_id: str
    ts: float  # Unix s
    reason: str | None = None


def read_dismissals(store: OnlineStore, user_id: str) -> list[Dismissal]:
    """The reader's dismissals, newest first; [] when there are none or the store cannot say
    (a damaged or unreadable value must not fail the request)."""
    try:
        text = store.read_marker(PREFIX + user_id)
    except Exception:
        return []
    return parse_dismissals(text)


def parse_dismissals(text: str | None) -> list[Dismissal]:
    """The marker's dismissals; [] for none or a damaged value."""
    if not text:
        return []
    try:
        return [Dismissal(str(a), float(t), r) for a, t, r in json.loads(text)]
    except (ValueError, TypeError):
        return []


def is_dismissal(event: Any) -> bool:
    return getattr(event, "type", None) == InteractionType.DISMISS


def apply_dismissals(store: OnlineStore, events: Iterable[Any]) -> int:
    """Merge the `dismiss` interactions among `events` into their readers' markers; returns how
    many readers were written. Idempotent (merged by article id, the newest dismissal kept)."""
    by_user: dict[str, list[Dismissal]] = {}
    for e in events:
        if is_dismissal(e):
            by_user.setdefault(e.user_id, []).append(
                Dismissal(e.article_id, e.timestamp.timestamp(), getattr(e, "reason", None)))
    for user_id, new in by_user.items():
        merged: dict[str, Dismissal] = {}
        for d in [*read_dismissals(store, user_id), *new]:
            old = merged.get(d.article_id)
            if old is None or d.ts >= old.ts:
                merged[d.article_id] = d
        kept = sorted(merged.values(), key=lambda d: d.ts, reverse=True)[:MAX_KEPT]
        store.write_marker(PREFIX + user_id, json.dumps(
            [[d.article_id, d.ts, d.reason] for d in kept], separators=(",", ":")))
    return len(by_user)


def forget_dismissals(store: OnlineStore, user_id: str) -> None:
    """Erasure: the reader's dismissals go with the rest of their online state."""
    store.delete_marker(PREFIX + user_id)


def demotion(scores: np.ndarray, category: np.ndarray, emb: np.ndarray,
             dismissed_category: np.ndarray, dismissed_emb: np.ndarray, age_h: np.ndarray
             ) -> np.ndarray:
    """Score penalty per candidate (same length as `scores`, >= 0).

    similarity to a dismissal = max(cosine of the embeddings, SAME_CATEGORY_SIMILARITY if the
    category matches), clipped at 0, times 2**(-age / DEMOTION_HALF_LIFE_H); the penalty is
    DEMOTION_STRENGTH standard deviations of this request's scores times the largest such
    similarity over the reader's dismissals (scale-free: ranker scores have no fixed unit)."""
    if len(scores) == 0 or len(dismissed_category) == 0:
        return np.zeros(len(scores))
    sim = emb @ dismissed_emb.T  # (n, d): unit vectors, cosine
    same = category[:, None] == dismissed_category[None, :]
    sim = np.maximum(np.maximum(sim, np.where(same, SAME_CATEGORY_SIMILARITY, 0.0)), 0.0)
    weight = np.exp2(-np.maximum(age_h, 0.0) / DEMOTION_HALF_LIFE_H)
    pull = (sim * weight[None, :]).max(axis=1)
    scale = float(np.std(scores)) or 1.0
    return DEMOTION_STRENGTH * scale * pull
