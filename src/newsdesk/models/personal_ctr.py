"""A personalised CTR from id-only logs: how readers *like this one* reacted to each article.

    ReaderExposures     the plug point: a store that is told who was shown what (the plain
                        OnlineStore only counts impressions per article, without the reader)
    PersonalCTRIndex    who was shown / clicked each article, reader profiles, and the score
    PersonalCTRRecommender  ranks by the personalised CTR alone (no fitting)

The score of article c for reader u at time t:

    sim(u, v)   = sum of idf(a) over the ids a both readers clicked, / (1 + |clicks of v|)
                  idf(a) = log(readers with a profile / readers who clicked a)
    X(c), C(c)  = sum over earlier exposures of c to readers v of sim(u, v) * decay(t - shown)
                  times the exposure's expected clicks (X: the slate's clicks / its size) and
                  times 1 for the clicked ones (C); decay halves every `half_life_hours`
    global(c)   = the same sums with weight 1 for every reader: (C + 1) / (X + 1)
    lift        = (C + strength * global) / (X + strength)

so it is the slate-normalised global lift when no similar reader saw c, and moves towards
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
from collections.abc import Callable, Sequence

import numpy as np

from newsdesk.models.base import RequestContext
from newsdesk.models.baselines import CatalogRecommender, StreamingCTRRecommender


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


_NEVER = math.inf  # click time of an exposure without a click


class PersonalCTRIndex:
    """Per-article exposures with their readers and slates, and reader click profiles.

    Two scores share one pass over an article's exposures:

    * `ctr`: the similarity-weighted CTR shrunk to a given global CTR (`ctr_strength`);
    * `lift`: observed over expected clicks. An exposure in a slate of n articles that drew k
      clicks expects k / n of them, so a miss in a slate of 100 weighs less than one in a slate
      of 5 (MIND's slates run from 2 to 300 articles). The global lift
      (C + prior_clicks) / (X + prior_clicks) is the prior of the similarity-weighted one,
      (C_sim + strength * global) / (X_sim + strength).

    `size_exponent` divides a reader's similarity by (1 + |their clicks|) ** exponent, so a
    reader who clicked everything is not similar to everyone. The defaults were picked on the
    MIND sample's days 4-5 (docs/mind-logs.md), never on the test day.
    """

    def __init__(self, *, half_life_hours: float = 24.0, strength: float = 0.3,
                 prior_clicks: float = 1.0, size_exponent: float = 1.0,
                 ctr_strength: float = 3.0) -> None:
        for name, value in (("half_life_hours", half_life_hours), ("strength", strength),
                            ("prior_clicks", prior_clicks), ("ctr_strength", ctr_strength)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if size_exponent < 0:
            raise ValueError(f"size_exponent must be >= 0, got {size_exponent}")
        self.half_life_hours = half_life_hours
        self.strength = strength
        self.prior_clicks = prior_clicks
        self.size_exponent = size_exponent
        self.ctr_strength = ctr_strength
        self.profiles: dict[str, set[str]] = {}
        self.readers_of: dict[str, int] = {}  # article -> readers whose profile holds it
        # article -> [[user, shown ts, click ts, slate]]; slate = [size, [click ts, ...]]
        self.exposures: dict[str, list[list]] = {}
        self._last: dict[tuple[str, str], list] = {}  # (user, article) -> newest entry
        # the last request's sums: a replay asks every system about one slate in a row
        self._memo: tuple[tuple, np.ndarray] | None = None

    def record_exposure(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self._memo = None
        ids = list(dict.fromkeys(article_ids))
        slate: list = [len(ids), []]
        for a in ids:
            entry = [user_id, ts, _NEVER, slate]
            self.exposures.setdefault(a, []).append(entry)
            self._last[(user_id, a)] = entry

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self._memo = None
        prof = self.profiles.setdefault(user_id, set())
        for a in dict.fromkeys(article_ids):
            if a not in prof:
                prof.add(a)
                self.readers_of[a] = self.readers_of.get(a, 0) + 1
            entry = self._last.get((user_id, a))
            # a click without an exposure (a seeded history) only adds to the profile
            if entry is not None and entry[1] <= ts and entry[2] == _NEVER:
                entry[2] = ts
                entry[3][1].append(ts)

    def _similarity(self, user_id: str) -> Callable[[str], float] | None:
        mine = self.profiles.get(user_id)
        if not mine:
            return None
        n_readers = len(self.profiles)
        idf = {a: math.log(n_readers / self.readers_of[a]) for a in mine}
        exponent = self.size_exponent
        cache: dict[str, float] = {}

        def sim(v: str) -> float:
            s = cache.get(v)
            if s is None:
                prof = self.profiles.get(v, ())
                s = sum(idf[b] for b in mine.intersection(prof))
                s = cache[v] = s / (1 + len(prof)) ** exponent if s else 0.0
            return s
        return sim

    def weights(self, user_id: str, article_ids: Sequence[str], now: float) -> np.ndarray:
        """(6, n) decayed sums over each article's exposures before `now`: global clicks,
        exposures, expected clicks; then the same weighted by similarity to `user_id`."""
        key = (user_id, tuple(article_ids), now)
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1].copy()
        out = np.zeros((6, len(article_ids)))
        sim = self._similarity(user_id)
        rate = math.log(2.0) / (self.half_life_hours * 3600.0)
        for j, a in enumerate(article_ids):
            for v, ts, click_ts, (size, slate_clicks) in self.exposures.get(a, ()):
                if ts >= now:
                    continue
                d = math.exp(-rate * (now - ts))
                clicked = click_ts < now
                expected = sum(1 for t in slate_clicks if t < now) / size
                out[0, j] += d * clicked
                out[1, j] += d
                out[2, j] += d * expected
                s = sim(v) if sim is not None else 0.0
                if s:
                    w = s * d
                    out[3, j] += w * clicked
                    out[4, j] += w
                    out[5, j] += w * expected
        self._memo = (key, out.copy())
        return out

    def lift(self, user_id: str, article_ids: Sequence[str], now: float) -> np.ndarray:
        """Observed over expected clicks among readers like `user_id`, shrunk to the global
        lift; shape (n,), 1.0 = as often clicked as a random pick from its slates."""
        w = self.weights(user_id, article_ids, now)
        glob = (w[0] + self.prior_clicks) / (w[2] + self.prior_clicks)
        return (w[3] + self.strength * glob) / (w[5] + self.strength)

    def ctr(self, user_id: str, article_ids: Sequence[str], now: float,
            base_ctr: np.ndarray) -> np.ndarray:
        """The similarity-weighted CTR (n,), shrunk towards `base_ctr` (n,) by
        `ctr_strength` (the plain-exposure variant of `lift`, kept for the ablation)."""
        w = self.weights(user_id, article_ids, now)
        return (w[3] + self.ctr_strength * base_ctr) / (w[4] + self.ctr_strength)

    def times_shown(self, user_id: str, article_ids: Sequence[str], now: float) -> np.ndarray:
        """How often this reader was shown each article before `now` without clicking it."""
        out = np.zeros(len(article_ids))
        for j, a in enumerate(article_ids):
            out[j] = sum(1 for v, ts, click_ts, _ in self.exposures.get(a, ())
                         if v == user_id and ts < now and click_ts >= now)
        return out


class PersonalCTRRecommender(CatalogRecommender):
    """Ranks by a LogSignalStore's `personal` index, nothing fitted: `mode="lift"` by the
    personal lift, `"global_lift"` by the slate-normalised lift of all readers (the personal
    part off), `"ctr"` by the similarity-weighted CTR over the store's smoothed CTR."""

    name = "personal_lift"
    MODES = ("lift", "global_lift", "ctr")

    def __init__(self, store: object, mode: str = "lift") -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        super().__init__()
        self.store = store
        self.mode = mode

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        index: PersonalCTRIndex = self.store.personal  # type: ignore[attr-defined]
        if self.mode == "lift":
            return index.lift(ctx.user_id, article_ids, ctx.now)
        if self.mode == "global_lift":
            w = index.weights("", article_ids, ctx.now)  # no reader: the global sums only
            return (w[0] + index.prior_clicks) / (w[2] + index.prior_clicks)
        base = StreamingCTRRecommender(self.store).score(ctx, article_ids)  # type: ignore
        return index.ctr(ctx.user_id, article_ids, ctx.now, base)
