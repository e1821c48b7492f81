"""Ranking from what click logs carry even where the news text is missing (MIND's usual case).

    LogSignalStore        a MemoryOnlineStore that also keeps, keyed by article id:
                          co-click counts from the readers' click histories and clicks, the time
                          an article was first seen in the logs, and a fast-decaying CTR
    LOG_FEATURES          the per-(user, article) features it yields at request time
    LogSignalRecommender  a logistic model over a subset of LOG_FEATURES
    FeatureLogger         collects point-in-time features during a replay (to fit the model)
    fit_logistic(X, y)    L2-regularised logistic regression by Newton steps (no sklearn)

Why: on the MIND sample only 838 of 22,592 article ids have a news.tsv row, so catalog-based
features (embeddings, category, publish time, co-clicks by catalog index) are empty for most
candidates and the bundle's ranker ties them; these signals need nothing but the ids.
Everything is point-in-time: a replay writes an impression's clicks after scoring it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.models.base import RequestContext
from newsdesk.models.baselines import CatalogRecommender
from newsdesk.models.personal_ctr import PersonalCTRIndex, ReaderExposures

LOG_FEATURES: tuple[str, ...] = (
    "ctr_logit",           # smoothed CTR on the store's decayed counts (streaming CTR's signal)
    "log_decayed_imps",    # exposure
    "fast_ctr_logit",      # smoothed CTR on fast-decaying counts (impression-to-click dynamics)
    "ctr_trend",           # fast minus slow logit: rising or fading
    "log_age_hours",       # hours since first seen in the logs (0 for never seen)
    "never_seen",          # 1 when the id was never shown nor clicked before
    "log_coclick",         # co-clicks of the article with the user's clicked ids
    "coclick_share",       # those co-clicks over the article's own clicks (popularity-free)
    "personal_lift_log",   # log observed / expected clicks among readers like this one
                           # (models.personal_ctr), shrunk to the global lift
    "reader_shown",        # log1p(times this reader was shown the article without a click)
    "global_lift_log",     # log observed / expected clicks of all readers (slate-normalised)
)
_PRIOR_CTR, _PRIOR_STRENGTH = 0.04, 10.0


def _logit(p: np.ndarray) -> np.ndarray:
    # seeded histories count as clicks without impressions, so a "CTR" can exceed 1
    p = np.clip(p, 1e-4, 1.0 - 1e-4)
    return np.log(p) - np.log1p(-p)


class LogSignalStore(MemoryOnlineStore, ReaderExposures):
    """MemoryOnlineStore plus id-keyed co-clicks, first-seen times, a fast CTR, and (told who
    saw what through `record_exposure`) a personalised CTR index.

    A click (or a seeded history, several ids at once) adds 1 to co[a][b] for each pair of
    the user's distinct clicked ids among the `coclick_window` most recent, so the co-click
    graph grows from histories and from live clicks alike.
    """

    def __init__(self, *, fast_half_life_hours: float = 3.0, coclick_window: int = 30,
                 personal: dict[str, float] | None = None, **kwargs: float) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        # `personal`: PersonalCTRIndex settings; its decay follows the store's
        self.personal = PersonalCTRIndex(half_life_hours=self.half_life_hours,
                                         **(personal or {}))
        if fast_half_life_hours <= 0:
            raise ValueError(f"fast_half_life_hours must be > 0, got {fast_half_life_hours}")
        if coclick_window < 1:
            raise ValueError(f"coclick_window must be >= 1, got {coclick_window}")
        self.fast_half_life_hours = fast_half_life_hours
        self.coclick_window = coclick_window
        self.first_seen: dict[str, float] = {}
        self.co: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self.item_clicks: dict[str, float] = {}
        self._fast: dict[str, list[float]] = {}  # id -> [imp value, click value, ref ts]

    def _seen(self, ids: Sequence[str], ts: float) -> None:
        fs = self.first_seen
        for a in ids:
            if a not in fs or ts < fs[a]:
                fs[a] = ts

    def _fast_bump(self, a: str, col: int, ts: float) -> None:
        v = self._fast.get(a)
        if v is None:
            self._fast[a] = v = [0.0, 0.0, ts]
        if ts > v[2]:
            f = 2.0 ** (-(ts - v[2]) / (self.fast_half_life_hours * 3600.0))
            v[0] *= f
            v[1] *= f
            v[2] = ts
        v[col] += 1.0

    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        super().record_impressions(article_ids, ts)
        self._seen(article_ids, ts)
        for a in article_ids:
            self._fast_bump(a, 0, ts)

    def record_exposure(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        self.personal.record_exposure(user_id, article_ids, ts)

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        before = [c.article_id for c in self.user_clicks(user_id, self.coclick_window)]
        super().record_clicks(user_id, article_ids, ts)
        self.personal.record_clicks(user_id, article_ids, ts)
        self._seen(article_ids, ts)
        new = list(dict.fromkeys(article_ids))[-self.coclick_window:]
        old = [b for b in dict.fromkeys(before) if b not in set(new)]
        for a in new:
            self._fast_bump(a, 1, ts)
            self.item_clicks[a] = self.item_clicks.get(a, 0.0) + 1.0
        co = self.co
        for i, a in enumerate(new):
            row_a = co[a]
            for b in (*new[:i], *old):
                row_a[b] = row_a.get(b, 0.0) + 1.0
                row_b = co[b]
                row_b[a] = row_b.get(a, 0.0) + 1.0

    def features(self, user_id: str, article_ids: Sequence[str], now: float) -> np.ndarray:
        """(n, len(LOG_FEATURES)) float64 for one request; uses only events before `now`."""
        n = len(article_ids)
        x = np.zeros((n, len(LOG_FEATURES)))
        if n == 0:
            return x
        stats = self.article_stats(list(article_ids), now)
        clicks = np.fromiter((s.decayed_clicks for s in stats), np.float64, n)
        imps = np.fromiter((s.decayed_impressions for s in stats), np.float64, n)
        slow = (clicks + _PRIOR_STRENGTH * _PRIOR_CTR) / (imps + _PRIOR_STRENGTH)
        x[:, 0] = _logit(slow)
        x[:, 1] = np.log1p(imps)
        hl = self.fast_half_life_hours * 3600.0
        fast = np.empty(n)
        history = [c.article_id for c in self.user_clicks(user_id, self.coclick_window)]
        for j, a in enumerate(article_ids):
            v = self._fast.get(a)
            if v is None:
                fc = fi = 0.0
            else:
                f = 2.0 ** (-max(0.0, now - v[2]) / hl)
                fi, fc = v[0] * f, v[1] * f
            fast[j] = (fc + _PRIOR_STRENGTH * _PRIOR_CTR) / (fi + _PRIOR_STRENGTH)
            seen = self.first_seen.get(a)
            if seen is None or seen >= now:
                x[j, 5] = 1.0
            else:
                x[j, 4] = math.log1p((now - seen) / 3600.0)
            row = self.co.get(a)
            if row and history:
                s = sum(row.get(b, 0.0) for b in history)
                x[j, 6] = math.log1p(s)
                x[j, 7] = s / (1.0 + self.item_clicks.get(a, 0.0))
        x[:, 2] = _logit(fast)
        x[:, 3] = x[:, 2] - x[:, 0]
        p = self.personal
        w = p.weights(user_id, article_ids, now)
        glob = (w[0] + p.prior_clicks) / (w[2] + p.prior_clicks)
        x[:, 8] = np.log((w[3] + p.strength * glob) / (w[5] + p.strength))
        x[:, 10] = np.log(glob)
        x[:, 9] = np.log1p(self.personal.times_shown(user_id, article_ids, now))
        return x


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, steps: int = 25
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights incl. bias last, feature means, feature scales) of an L2 logistic regression
    on standardised features, fitted by Newton's method."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need equal, non-zero numbers of rows and labels; got {len(x)}, "
                         f"{len(y)}")
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w, mu, sd


class FeatureLogger(CatalogRecommender):
    """Records LOG_FEATURES of every scored impression (in order) and scores 0."""

    name = "feature_logger"

    def __init__(self, store: LogSignalStore) -> None:
        super().__init__()
        self.store = store
        self.rows: list[np.ndarray] = []

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        self.rows.append(self.store.features(ctx.user_id, article_ids, ctx.now))
        return np.zeros(len(article_ids))


class LogSignalRecommender(CatalogRecommender):
    """Logistic score over `features` (names from LOG_FEATURES) of a LogSignalStore."""

    name = "log_signals"

    def __init__(self, store: LogSignalStore, features: Sequence[str],
                 fitted: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        unknown = [f for f in features if f not in LOG_FEATURES]
        if unknown:
            raise ValueError(f"features: unknown name(s) {unknown}; known: {LOG_FEATURES}")
        super().__init__()
        self.store = store
        self.cols = [LOG_FEATURES.index(f) for f in features]
        self.w, self.mu, self.sd = fitted
        if len(self.w) != len(self.cols) + 1:
            raise ValueError(f"fitted weights have {len(self.w) - 1} features, expected "
                             f"{len(self.cols)}")

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        x = self.store.features(ctx.user_id, article_ids, ctx.now)[:, self.cols]
        return ((x - self.mu) / self.sd) @ self.w[:-1] + self.w[-1]


def fit_lambdarank(rows: Sequence[np.ndarray], labels: Sequence[np.ndarray], *,
                   num_boost_round: int = 200, seed: int = 0) -> object:
    """A LightGBM lambdarank booster over LOG_FEATURES, one query group per impression
    (the ranking inside a slate is what the per-impression metrics judge)."""
    import lightgbm as lgb

    keep = [i for i, y in enumerate(labels) if 0 < y.sum() < len(y)]
    x = np.vstack([rows[i] for i in keep])
    y = np.concatenate([labels[i] for i in keep])
    params = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 15,
              "min_data_in_leaf": 50, "feature_fraction": 0.9, "verbose": -1, "seed": seed,
              "num_threads": 1, "deterministic": True}
    data = lgb.Dataset(x, y, group=[len(rows[i]) for i in keep],
                       feature_name=list(LOG_FEATURES))
    return lgb.train(params, data, num_boost_round=num_boost_round)


class LogSignalRanker(CatalogRecommender):
    """A booster from `fit_lambdarank` over all LOG_FEATURES of a LogSignalStore."""

    name = "log_signals_gbm"

    def __init__(self, store: LogSignalStore, booster: object) -> None:
        super().__init__()
        self.store = store
        self.booster = booster

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        x = self.store.features(ctx.user_id, article_ids, ctx.now)
        return np.asarray(self.booster.predict(x), dtype=np.float64)  # type: ignore[attr-defined]


class HistoryCoClickRecommender(CatalogRecommender):
    """No fitting: co-clicks of each candidate with the reader's clicked ids (the history
    column in MIND's static protocol), ties broken by the candidate's own logged clicks.

    Needs nothing but ids, so it ranks candidates that have no news text, where a catalog-based
    model can only tie them.
    """

    name = "history_coclick"

    def __init__(self, store: LogSignalStore) -> None:
        super().__init__()
        self.store = store

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        x = self.store.features(ctx.user_id, article_ids, ctx.now)
        pop = np.fromiter((self.store.item_clicks.get(a, 0.0) for a in article_ids),
                          np.float64, len(article_ids))
        return x[:, LOG_FEATURES.index("log_coclick")] + 1e-3 * np.log1p(pop)
