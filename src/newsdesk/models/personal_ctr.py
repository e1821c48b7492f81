"""A personalised CTR from id-only logs: how readers *like this one* reacted to each article.

    ReaderExposures     the plug point: a store that is told who was shown what (the plain
                        OnlineStore only counts impressions per article, without the reader)
    PersonalCTRIndex    who was shown / clicked each article, reader profiles, and the score
    PersonalCTRRecommender  ranks by the personalised CTR alone (no fitting)

The score of article c for reader u at time t:

    sim(u, v)   = sum of idf(a) over the ids a both readers clicked, / sqrt(1 + |clicks of v|)
                  idf(a) = log(readers with a profile / readers who clicked a)
    E(c), C(c)  = sum over earlier exposures of c to readers v of sim(u, v) * decay(t - shown),
                  all of them (E) and the clicked ones (C); decay halves every `half_life_hours`
    score       = (C + strength * base_ctr) / (E + strength)

so it is the global smoothed CTR (`base_ctr`) when no similar reader saw c, and moves towards
what similar readers did as their weight grows. The reader's own earlier exposures count too
(sim(u, u) is the largest), so an article shown to this reader several times without a click
falls: the per-reader exposure signal comes out of the same formula.

Why: on the MIND sample 96% of candidate ids have no news text, so no content or category model
can personalise; the readers' click histories (MIND's history column, seeded as clicks) are the
only per-reader signal, and they overlap across readers on the older, widely read ids. Measured
on the sample in `docs/mind-logs.md`. Everything is point in time: an exposure is recorded after
the impression is scored, a click after that.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from newsdesk.models.base import RequestContext
from newsdesk.models.baselines import CatalogRecommender


class ReaderExposures(ABC):
    """A store that also learns which reader was shown which articles.

    Contract: `record_exposure(user_id, article_ids, ts)` is called once per logged impression,
    after every system has scored it and in time order with the store's other events; a click
    on one of those ids arrives later through the store's `record_clicks`. Implementations must
    not let an exposure or click at or after `now` change a score asked for at `now`.
    """

    @abstractmethod
    def record_exposure(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        """Reader `user_id` was shown `article_ids` at `ts` (Unix seconds)."""


class PersonalCTRIndex:
    """Per-article exposures with their readers, and reader click profiles (id sets).

    `strength` is in units of similarity weight: how much weight of similar readers it takes
    to move the score half-way from the global CTR to theirs. It is the only fitted choice;
    30 was picked on the MIND sample's days 4-5 (see docs/mind-logs.md), not on the test day.
    """

    def __init__(self, *, half_life_hours: float = 24.0, strength: float = 30.0) -> None:
        if half_life_hours <= 0:
            raise ValueError(f"half_life_hours must be > 0, got {half_life_hours}")
        if strength <= 0:
            raise ValueError(f"strength must be > 0, got {strength}")
        self.half_life_hours = half_life_hours
        self.strength = strength
        self.profiles: dict[str, set[str]] = {}
        self.readers_of: dict[str, int] = {}  # article -> readers whose profile holds it
        # article -> [[user, ts, clicked]], and (user, article) -> that user's newest entry
        self.exposures: dict[str, list[list]] = {}
        self._last: dict[tuple[str, str], list] = {}

    def record_exposure(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        for a in dict.fromkeys(article_ids):
            entry = [user_id, ts, 0]
            self.exposures.setdefault(a, []).append(entry)
            self._last[(user_id, a)] = entry

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        prof = self.profiles.setdefault(user_id, set())
        for a in dict.fromkeys(article_ids):
            if a not in prof:
                prof.add(a)
                self.readers_of[a] = self.readers_of.get(a, 0) + 1
            entry = self._last.get((user_id, a))
            if entry is not None and entry[1] <= ts:
                entry[2] = 1  # a click without an exposure (a seeded history) only profiles

    def weights(self, user_id: str, article_ids: Sequence[str], now: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """(C, E): similarity- and decay-weighted clicks and exposures of each article, from
        exposures before `now`; shapes (n,)."""
        n = len(article_ids)
        clicked, exposed = np.zeros(n), np.zeros(n)
        mine = self.profiles.get(user_id)
        if not mine:
            return clicked, exposed
        n_readers = len(self.profiles)
        idf = {a: math.log(n_readers / self.readers_of[a]) for a in mine}
        sims: dict[str, float] = {}
        rate = math.log(2.0) / (self.half_life_hours * 3600.0)
        for j, a in enumerate(article_ids):
            for v, ts, was_clicked in self.exposures.get(a, ()):
                if ts >= now:
                    continue
                s = sims.get(v)
                if s is None:
                    prof = self.profiles.get(v, ())
                    s = sum(idf[b] for b in mine.intersection(prof)) / math.sqrt(1 + len(prof))
                    sims[v] = s
                if s:
                    w = s * math.exp(-rate * (now - ts))
                    exposed[j] += w
                    if was_clicked:
                        clicked[j] += w
        return clicked, exposed

    def ctr(self, user_id: str, article_ids: Sequence[str], now: float,
            base_ctr: np.ndarray) -> np.ndarray:
        """The personalised CTR (n,), shrunk towards `base_ctr` (n,) by `strength`."""
        c, e = self.weights(user_id, article_ids, now)
        return (c + self.strength * base_ctr) / (e + self.strength)

    def times_shown(self, user_id: str, article_ids: Sequence[str], now: float) -> np.ndarray:
        """How often this reader was shown each article before `now` without clicking it."""
        out = np.zeros(len(article_ids))
        for j, a in enumerate(article_ids):
            out[j] = sum(1 for v, ts, k in self.exposures.get(a, ())
                         if v == user_id and ts < now and not k)
        return out


class PersonalCTRRecommender(CatalogRecommender):
    """Ranks by a LogSignalStore's personalised CTR (its `personal` index) over its smoothed
    CTR; nothing is fitted."""

    name = "personal_ctr"

    def __init__(self, store: object) -> None:
        super().__init__()
        self.store = store

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        base = self.store.smoothed_ctr(article_ids, ctx.now)  # type: ignore[attr-defined]
        return self.store.personal.ctr(ctx.user_id, article_ids, ctx.now, base)  # type: ignore[attr-defined]
