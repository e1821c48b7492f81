"""What every candidate generator shares: the live catalog, the online store and a user view.

A request builds one `UserView` (the user's recent clicks from the store, their embedding
profile and category affinity, the live article set) and hands it to every generator's
`propose`, so the store is read once per request however many generators run. `candidates`
(the `CandidateGenerator` contract) builds the view itself for standalone use.

The live set comes from `LiveSets` (see `candidates.live`): the same object for every request
while the catalog and the live horizon are unchanged, so generators keep what they derive from
it (embeddings, ids, factors, categories of the live articles) in `Workspace.derived`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from newsdesk.features.dismissals import PREFIX as DISMISSALS_PREFIX
from newsdesk.features.dismissals import parse_dismissals
from newsdesk.features.interest_seeds import PREFIX as SEED_PREFIX
from newsdesk.features.interest_seeds import parse_seed
from newsdesk.features.online_store import OnlineStore
from newsdesk.features.ranking_features import FeatureBuilder
from newsdesk.models.base import CandidateGenerator, RequestContext, ScoredArticle
from newsdesk.models.candidates.live import LiveSet, LiveSets
from newsdesk.models.catalog import ArticleCatalog

T = TypeVar("T")


@dataclass
class UserView:
    """One user at one time. click_idx/click_ts: (L,) newest first, -1/NaN = unknown/pad;
    profile (dim,) float32; affinity (C,) category shares; live: live catalog indices."""

    user_id: str
    now: float
    click_idx: np.ndarray
    click_ts: np.ndarray
    profile: np.ndarray
    affinity: np.ndarray
    live: np.ndarray
    live_set: LiveSet | None = None  # the cached set `live` comes from (None: computed ad hoc)
    memo: dict[str, Any] = field(default_factory=dict)  # per-request values (see because_...)
    # a cold reader whose stated interests stand in for clicks (features.interest_seeds):
    # click_idx holds the seed's anchor articles, which count as history but not as read
    seeded: bool = False
    # the reader's dismissals (features.dismissals): catalog indices (-1: not in the catalog)
    # and Unix s, newest first
    dismissed_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dismissed_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # the reader's recent exposures (articles shown), catalog indices newest first, -1 padded
    # to the builder's recent_exposures; None when the ranker does not use them
    exposure_idx: np.ndarray | None = None

    @property
    def has_history(self) -> bool:
        return bool((self.click_idx >= 0).any())

    @property
    def read_clicks(self) -> np.ndarray:
        """Articles the reader actually read (the seed's anchors are not)."""
        return self.click_idx[:0] if self.seeded else self.known_clicks

    @property
    def known_clicks(self) -> np.ndarray:
        return self.click_idx[self.click_idx >= 0]


@dataclass
class Workspace:
    """The shared state generators read: catalog, store, feature parameters, live horizon."""

    catalog: ArticleCatalog
    store: OnlineStore
    builder: FeatureBuilder
    max_age_hours: float | None = 72.0

    def __post_init__(self) -> None:
        self.live_sets = LiveSets(self.catalog, self.max_age_hours)
        self._store_rows: np.ndarray | None = None  # catalog index -> store row (see below)
        self._store_rows_epoch = 0  # the store's row_epoch when _store_rows was filled

    def live_set(self, now: float) -> LiveSet:
        """The live articles at `now` (= catalog.live_indices(now, max_age_hours)), cached."""
        return self.live_sets.at(now)

    def derived(self, live: np.ndarray, name: str, build: Callable[[np.ndarray], T]) -> T:
        """`build(live)`, memoised per live set when `live` is a cached live set's indices
        (the same object), computed afresh otherwise (an ad-hoc subset)."""
        cur = self.live_sets.current
        if cur is not None and live is cur.indices:
            return cur.derived(name, build)
        return build(live)

    def live_mask(self, live: np.ndarray) -> np.ndarray:
        """Boolean (catalog size at the time,) mask of `live`, once per live set."""
        def build(ix: np.ndarray) -> np.ndarray:
            mask = np.zeros(self.catalog.size, dtype=bool)
            mask[ix] = True
            return mask

        return self.derived(live, "mask", build)

    def live_embeddings(self, live: np.ndarray) -> np.ndarray:
        """catalog.embeddings[live] (len(live), dim), once per live set: copying 10k x dim
        floats per request would cost more than the search itself."""
        return self.derived(live, "embeddings", lambda ix: self.catalog.embeddings[ix])

    def article_stats(self, idx: np.ndarray, now: float) -> np.ndarray:
        """The store's `stats_matrix` (len(idx), 4) of catalog articles idx (all >= 0).

        Where the store offers stable row handles (`article_rows`), each article's id is
        resolved once and kept per catalog index, so a request does not look up hundreds of
        ids in two 100k-entry dictionaries; ids still unknown to the store are re-resolved
        until they appear (their first impression)."""
        store, cat = self.store, self.catalog
        cache = self._store_rows
        epoch = store.row_epoch()
        if epoch != self._store_rows_epoch:  # the store was cleared (a rebuild): handles void
            cache = None
        if cache is None or len(cache) < cat.size:
            probe = store.article_rows(())
            if probe is None:
                return store.stats_matrix([cat.ids[i] for i in idx.tolist()], now)
            grown = np.full(max(2 * cat.size, 1024), -1, dtype=np.int64)
            if cache is not None:
                grown[: len(cache)] = cache
            self._store_rows_epoch = epoch
            cache = self._store_rows = grown
        rows = cache[idx]
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            found = store.article_rows([cat.ids[i] for i in idx[missing].tolist()])
            assert found is not None
            rows[missing] = found
            cache[idx[missing]] = found  # a benign race: every writer writes the same value
        return store.stats_rows(rows, now)

    def user_clicks(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(click_idx, click_ts) of length builder.recent_clicks, padded with -1 / NaN."""
        n = self.builder.recent_clicks
        return self._click_arrays(self.store.user_clicks(user_id, limit=n)[:n])

    def _click_arrays(self, clicks: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        n = self.builder.recent_clicks
        clicks = clicks[:n]
        idx = np.full(n, -1, dtype=np.int64)
        ts = np.full(n, np.nan)
        if clicks:
            idx[: len(clicks)] = self.catalog.lookup([c.article_id for c in clicks])
            ts[: len(clicks)] = [c.ts for c in clicks]
        return idx, ts

    def history(self, user_id: str) -> tuple[np.ndarray, np.ndarray, bool, str | None]:
        """(click_idx, click_ts, seeded, dismissals text) of a reader, in one store round
        trip: the clicks, or for a cold reader with stated interests the seed's anchors
        (seeded=True). What `view` builds on, without the profiles (explanations need only
        this)."""
        idx, ts, seeded, dismiss_text, _ = self._history(user_id, with_exposures=False)
        return idx, ts, seeded, dismiss_text

    def _history(self, user_id: str, with_exposures: bool
                 ) -> tuple[np.ndarray, np.ndarray, bool, str | None, np.ndarray | None]:
        """`history` and, when asked for and the ranker uses them, the reader's exposures
        (`_exposure_array`), all in the same round trip."""
        markers = [DISMISSALS_PREFIX + user_id, SEED_PREFIX + user_id]
        b = self.builder
        exposures = None
        if with_exposures and b.wants_exposures:
            clicks, (dismiss_text, seed_text), shown = self.store.user_reads_with_exposures(
                user_id, b.recent_clicks, markers, b.recent_exposures)
            exposures = self._exposure_array(shown)
        else:
            clicks, (dismiss_text, seed_text) = self.store.user_reads(
                user_id, b.recent_clicks, markers)
        idx, ts = self._click_arrays(clicks)
        if not (idx >= 0).any():  # a cold reader: stated interests seed the history
            seed = parse_seed(seed_text)
            if seed is not None and seed.anchors:
                anchors = self.catalog.lookup(seed.anchors[: len(idx)])
                if (anchors >= 0).any():
                    idx = np.full(len(idx), -1, dtype=np.int64)
                    ts = np.full(len(idx), np.nan)
                    idx[: len(anchors)] = anchors
                    ts[: len(anchors)] = seed.created_ts
                    return idx, ts, True, dismiss_text, exposures
        return idx, ts, False, dismiss_text, exposures

    def view(self, user_id: str, now: float) -> UserView:
        idx, ts, seeded, dismiss_text, exposures = self._history(user_id, with_exposures=True)
        profile, affinity = self.builder.user_profiles(self.catalog, idx[None, :])
        live = self.live_set(now)
        dismissed = parse_dismissals(dismiss_text)
        d_idx = (self.catalog.lookup([d.article_id for d in dismissed]) if dismissed
                 else np.zeros(0, dtype=np.int64))
        return UserView(user_id, now, idx, ts, profile[0], affinity[0], live.indices, live,
                        seeded=seeded, dismissed_idx=np.asarray(d_idx, dtype=np.int64),
                        dismissed_ts=np.array([d.ts for d in dismissed], dtype=np.float64),
                        exposure_idx=exposures)

    def _exposure_array(self, shown: list[Any]) -> np.ndarray:
        """The reader's recent exposures as catalog indices (M,), newest first, -1 padded."""
        m = self.builder.recent_exposures
        out = np.full(m, -1, dtype=np.int64)
        shown = shown[:m]
        if shown:
            out[: len(shown)] = self.catalog.lookup([c.article_id for c in shown])
        return out


_SAMPLE_STEP = 16  # `largest` bounds the m-th largest value from a 1-in-16 sample


def largest(values: np.ndarray, m: int) -> np.ndarray:
    """Positions of the m largest values, in no order (m < len(values)): the set
    np.argpartition(-values, m - 1)[:m] gives, ties at the boundary aside.

    On a long array (a live set of 10k articles) a full partition costs ~0.1 ms per call;
    a strided sample bounds the m-th largest from below instead, so that only the few values
    above the bound (about 2m) are partitioned. When the bound fails (fewer than m values
    above it, e.g. many ties), it falls back to the full partition."""
    n = len(values)
    if n < 4096 or m * 8 > n:
        return np.argpartition(-values, m - 1)[:m]
    sample = values[::_SAMPLE_STEP]
    j = min(2 * m // _SAMPLE_STEP + 1, len(sample))  # ~2m values lie above the j-th best
    bound = np.partition(sample, len(sample) - j)[len(sample) - j]
    above = np.flatnonzero(values >= bound)
    if len(above) < m:
        return np.argpartition(-values, m - 1)[:m]
    return above[np.argpartition(-values[above], m - 1)[:m]]


def top_n(indices: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best (indices, scores), best first; ties broken by index for determinism."""
    if len(indices) == 0 or n <= 0:
        return indices[:0], scores[:0]
    if len(indices) > n:
        part = largest(scores, n)
        indices, scores = indices[part], scores[part]
    order = np.lexsort((indices, -scores))
    return indices[order], scores[order]


class IndexedGenerator(CandidateGenerator):
    """A generator over catalog indices; subclasses implement `propose` and `reason`."""

    name = "base"

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(catalog indices, scores) of up to n live candidates, best first."""
        raise NotImplementedError

    def reason(self, view: UserView, i: int) -> str:
        """A short human explanation of why article i was proposed."""
        return ""

    def candidates(self, ctx: RequestContext, n: int) -> list[ScoredArticle]:
        view = self.ws.view(ctx.user_id, ctx.now)
        idx, scores = self.propose(view, n)
        ids = self.ws.catalog.ids
        return [ScoredArticle(ids[i], float(s), self.reason(view, int(i)), self.name)
                for i, s in zip(idx, scores, strict=True)]


def because_you_read(ws: Workspace, view: UserView, i: int) -> str:
    """'because you read <title>' naming the recent click most similar to article i."""
    if view.seeded:
        return "matches your stated interests"
    clicks = view.known_clicks[: ws.builder.sim_clicks]
    if len(clicks) == 0:
        return ""
    if "click_embeddings" not in view.memo:  # once per request, not once per item
        view.memo["click_embeddings"] = ws.catalog.embeddings[clicks]
    sims = view.memo["click_embeddings"] @ ws.catalog.embeddings[i]
    return f"because you read {ws.catalog.titles[int(clicks[int(np.argmax(sims))])]}"
