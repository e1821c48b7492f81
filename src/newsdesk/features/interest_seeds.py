"""Interest seeds: a cold reader's profile, stated before their first click, kept in the store.

A new reader states interests in free text ("Bundesliga, Klima, tech startups") or arrives from
a referring article; `models.cold_start` embeds that with the bundle's content embedder and
writes a `SeedProfile` here: the vector, and the `anchors`, the articles nearest to each stated
interest. The recommender reads it only for readers without known clicks
(`candidates.base.Workspace.view`), and the anchors stand in for the reader's clicks until the
first real one: the profile, the category shares, the co-click and similarity features and the
ranker then see a reader with a few clicks on those topics, a situation the ranker was trained
on (a seed vector alone gives it feature values no cold reader ever had in training, and it
ignores them). Anchors count as history, never as read: they stay recommendable.

Storage: one store marker per reader (`seed:<user_id>`), so every worker and replica sharing
the store sees it, in the embedded memory store (snapshotted with it) and in Redis alike. The
vector is kept as float16 (768 bytes at 384 dims, base64 in JSON): the profile is compared by
cosine, and half precision changes it by < 1e-3.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import numpy as np

from newsdesk.errors import InvalidInput
from newsdesk.features.online_store import OnlineStore

PREFIX = "seed:"


@dataclass(frozen=True)
class SeedProfile:
    """vector (dim,) float32 of unit norm; categories: category name -> share of the anchors
    (sums to 1); source: "text", "article" or "text+article"; anchors: article ids standing in
    for clicks, most relevant first; created_ts: Unix s (the anchors' click time)."""

    vector: np.ndarray
    categories: dict[str, float] = field(default_factory=dict)
    source: str = "text"
    anchors: tuple[str, ...] = ()
    created_ts: float = 0.0

    def encode(self) -> str:
        v = np.asarray(self.vector, dtype=np.float16)
        return json.dumps({"v": base64.b64encode(v.tobytes()).decode("ascii"),
                           "c": self.categories, "s": self.source, "a": list(self.anchors),
                           "t": self.created_ts}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> SeedProfile:
        data = json.loads(text)
        v = np.frombuffer(base64.b64decode(data["v"]), dtype=np.float16).astype(np.float32)
        return cls(v, {str(k): float(x) for k, x in data.get("c", {}).items()},
                   str(data.get("s", "text")), tuple(str(a) for a in data.get("a", ())),
                   float(data.get("t", 0.0)))


def write_seed(store: OnlineStore, user_id: str, seed: SeedProfile) -> None:
    if not user_id:
        raise InvalidInput("user_id: must not be empty", field="user_id")
    store.write_marker(PREFIX + user_id, seed.encode())


def read_seed(store: OnlineStore, user_id: str) -> SeedProfile | None:
    """The reader's seed, None when there is none or the store cannot say (a seed is a hint:
    an unavailable store or a damaged value must not fail the request)."""
    try:
        text = store.read_marker(PREFIX + user_id)
    except Exception:
        return None
    return parse_seed(text)


def parse_seed(text: str | None) -> SeedProfile | None:
    """The marker's seed; None for none or a damaged value."""
    try:
        return None if text is None else SeedProfile.decode(text)
    except Exception:
        return None


def delete_seed(store: OnlineStore, user_id: str) -> None:
    store.delete_marker(PREFIX + user_id)
