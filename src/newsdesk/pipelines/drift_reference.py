"""The drift reference of a bundle, taken through the serving path.

Serving samples the rows the ranker scores: every candidate of a request, at the serve
position. Logged impressions are a different population (the logging policy's slates), so a
reference histogrammed from the ranker's training rows alarms on an unshifted world (measured:
score PSI 0.40 against served candidate rows of the same simulated world). The reference is
therefore built the way serving builds rows:

    the staged bundle loaded with an in-memory online store
    └─ replayed point-in-time (impressions, clicks) up to each sampled request's time
       └─ NewsRecommender.recommend(user, time) for the latest logged requests
          └─ the rows and scores it scored ──> Reference.fit ──> reference.json

`serving_rows` is the same loop for any (user, time) list: the drift tests use it to build
unshifted and shifted serving populations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.ranking_features import FEATURE_NAMES
from newsdesk.features.training_log import LogArrays, warm_store
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import exposures_needed, load_recommender, read_manifest
from newsdesk.models.pipeline import NewsRecommender
from newsdesk.monitoring.drift import Reference

TIME_CHUNKS = 20  # the store advances in this many steps over the sampled requests


class _Collect:
    """A DriftSink keeping every scored row."""

    def __init__(self) -> None:
        self.x: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []

    def observe(self, x: np.ndarray, scores: np.ndarray) -> None:
        self.x.append(np.array(x, dtype=np.float32))
        self.scores.append(np.asarray(scores, dtype=np.float64))


def latest_requests(log: LogArrays, since: float, n: int, seed: int
                    ) -> list[tuple[str, float]]:
    """Up to n logged requests (user id, time) at or after `since`, uniformly sampled; the
    latest n when none is that recent."""
    q = log.exposures.select("q", "ucode", "ts").unique("q").sort(["ts", "q"])
    recent = q.filter(q["ts"] >= since)
    if len(recent) == 0:
        recent = q.tail(n)
    if len(recent) > n:
        keep = np.sort(np.random.default_rng(seed).choice(len(recent), n, replace=False))
        recent = recent[keep]
    ids = log.events.user_ids
    return [(ids[int(u)], float(t)) for u, t in zip(recent["ucode"].to_list(),
                                                    recent["ts"].to_list(), strict=True)]


def serving_rows(bundle: Path, log: LogArrays, requests: Sequence[tuple[str, float]], *,
                 half_life_hours: float, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Rows (R, F) and scores (R,) the bundle's recommender scores for the requests, each
    with the online store replayed up to (about) its time."""
    store = MemoryOnlineStore(half_life_hours=half_life_hours,
                              max_user_exposures=exposures_needed(read_manifest(bundle)))
    rec = load_recommender(bundle, store)
    assert isinstance(rec, NewsRecommender)
    sink = _Collect()
    rec.drift = sink
    ordered = sorted(requests, key=lambda r: r[1])
    chunks = np.array_split(np.arange(len(ordered)), min(TIME_CHUNKS, max(len(ordered), 1)))
    since: float | None = None
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        until = ordered[int(chunk[0])][1]
        warm_store(store, log, until=until, since=since)
        since = until
        for i in chunk:
            user, ts = ordered[int(i)]
            rec.recommend(RequestContext(user_id=user, now=ts, k=k))
    if not sink.x:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0)
    return np.concatenate(sink.x), np.concatenate(sink.scores)


def serving_reference(bundle: Path, log: LogArrays, *, since: float, requests: int,
                      half_life_hours: float, seed: int) -> Reference | None:
    """The reference of a staged bundle (module docstring); None if nothing was scored."""
    x, scores = serving_rows(bundle, log, latest_requests(log, since, requests, seed),
                             half_life_hours=half_life_hours)
    if len(scores) == 0:
        return None
    names = read_manifest(bundle)["feature_schema"]  # + plug-ins' columns, if any
    return Reference.fit(x, scores, names, seed=seed)
