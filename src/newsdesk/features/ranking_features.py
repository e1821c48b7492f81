"""The ranking features: one `FeatureBuilder` used by training (log replay) and serving.

Train/serve parity is structural: both paths gather the same raw inputs (`RankingInputs`: the
user's recent clicks as catalog indices, the article statistics of the online store at the
request time, the shown/candidate articles) and call the same `FeatureBuilder.build`. The
training job gathers them by replaying the log point-in-time (`newsdesk.features.replay`); the
recommender gathers them from the `OnlineStore` and the live catalog.

Feature matrix: shape (rows, len(FEATURE_NAMES)), float32, columns in FEATURE_NAMES order.

Missing values are NaN (age of an article outside the catalog, decay_ratio before its first
impression); LightGBM learns where they go.

Story, entity and language signals (world v2 of the simulator, and real news): readers follow
stories over hours and days, and the articles of one story sit far closer in the text
embedding (MiniLM: cosine ~0.85) than two articles of one topic (~0.3). `story_clicks` counts
the reader's `sim_clicks` newest clicks within `story_sim` cosine of the candidate and
`hours_since_story_click` says how long ago the newest of them was; `entity_overlap` counts the
candidate's entities (the catalog's `entities` tags, as a CMS sets them) found among those of
the reader's recent clicks; `language_mismatch` is the share of the reader's recent
clicks in another language than the candidate's. `story_exposures` counts the reader's
`recent_exposures` newest *shown* articles (every slate the reader was served, clicked or not)
within `story_sim` of the candidate: the negative evidence a click list lacks. A big story is
clicked now and then by readers who do not follow it; what tells them from its followers is how
much of it they were shown and passed over (world v2: a reader follows a story or not, for
good). All come from text, tags and the event log only.

Position de-biasing: `position` is the logged 0-based slot at training time and a fixed
`serve_position` (0) at serving time, so the model learns the examination bias separately from
relevance and ranks every candidate as if it were shown at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

FEATURE_NAMES: tuple[str, ...] = (
    "position",
    "age_hours",
    "shelf_life_elapsed",
    "log_decayed_clicks",
    "log_decayed_impressions",
    "smoothed_ctr",
    "log_clicks",
    "log_impressions",
    "lifetime_ctr",
    "decay_ratio",
    "content_sim",
    "max_click_sim",
    "category_affinity",
    "category_log_clicks",
    "topic_interest",
    "user_log_clicks",
    "hours_since_last_click",
    "story_clicks",
    "hours_since_story_click",
    "entity_overlap",
    "language_mismatch",
    "coclick",
    "cf_score",
    "story_exposures",
)
_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
STAT_COLUMNS = ("decayed_clicks", "decayed_impressions", "clicks", "impressions")
NO_CLICK_HOURS = 24.0 * 30  # hours_since_last_click of users without clicks
_CHUNK = 8192  # rows per chunk of the (rows, sim_clicks, dim) similarity gather


@dataclass
class RankingInputs:
    """Raw inputs of Q queries (user + time) and R rows (query, article) to score.

    click_idx   (Q, L) int64   the user's recent clicks, newest first, catalog index; -1 = pad
                               or unknown article
    click_ts    (Q, L) float64 click times (Unix s), NaN for padding
    user_ids    (Q,)           user ids (CF factors are keyed by id)
    row_query   (R,) int64     query of each row
    row_article (R,) int64     catalog index of the row's article, -1 when unknown
    now         (R,) float64   request time (Unix s)
    position    (R,) float64   logged position (training) or the serving position
    stats       (R, 4) float64 STAT_COLUMNS of the article at `now`, events before `now`
    exposure_idx (Q, M) int64  the user's recent exposures (articles shown), newest first,
                               catalog index, -1 = pad or unknown; None = not read (the
                               story_exposures feature is disabled)
    """

    click_idx: np.ndarray
    click_ts: np.ndarray
    user_ids: list[str]
    row_query: np.ndarray
    row_article: np.ndarray
    now: np.ndarray
    position: np.ndarray
    stats: np.ndarray
    exposure_idx: np.ndarray | None = None


class PairScorer(Protocol):
    """A static candidate model that also scores (user, article) pairs as a feature."""

    def pair_scores(self, inputs: RankingInputs) -> np.ndarray:
        """Score of each row, shape (R,), 0 where the model knows nothing."""


class CatalogArrays(Protocol):
    embeddings: np.ndarray
    published: np.ndarray
    expires: np.ndarray  # Unix s, inf = never
    category: np.ndarray
    categories: list[str]
    language: np.ndarray  # (N,) language code
    entities: np.ndarray  # (N, E) entity codes, -1 padded


class FeatureBuilder:
    """Computes FEATURE_NAMES from RankingInputs; stateless apart from its parameters.

    recent_clicks: clicks per user read from the store (L); sim_clicks: how many of the newest
    feed max_click_sim; profile_decay: weight of the r-th newest click is profile_decay**r;
    ctr_prior / ctr_strength: Beta prior of the smoothed CTR (mean, pseudo-impressions);
    affinity_prior: pseudo-clicks of the uniform Dirichlet prior of `topic_interest`;
    story_sim: cosine from which a click counts as the candidate's story; recent_exposures:
    exposures per user read from the store (M) for story_exposures; disabled: features left
    missing (NaN) in every row, so the ranker cannot use them (ablations).
    """

    def __init__(self, *, recent_clicks: int = 50, sim_clicks: int = 10,
                 profile_decay: float = 0.9, ctr_prior: float = 0.05,
                 ctr_strength: float = 20.0, serve_position: float = 0.0,
                 affinity_prior: float = 3.0, story_sim: float = 0.7,
                 recent_exposures: int = 100,
                 disabled: tuple[str, ...] | list[str] = (),
                 columns: tuple[str, ...] | list[str] | None = None) -> None:
        unknown = sorted(set(disabled) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"disabled: unknown feature(s) {unknown}; allowed: "
                             f"{list(FEATURE_NAMES)}")
        if not -1.0 <= story_sim <= 1.0:
            raise ValueError(f"story_sim must be a cosine in [-1, 1], got {story_sim}")
        self.story_sim = float(story_sim)
        # a bundle trained before later features existed: build() returns its columns only,
        # in its order, and what it lacks is not computed (serving only; not a parameter)
        self._select: np.ndarray | None = None
        if columns is not None and tuple(columns) != FEATURE_NAMES:
            missing = sorted(set(columns) - set(FEATURE_NAMES))
            if missing:
                raise ValueError(f"columns: unknown feature(s) {missing}")
            self._select = np.array([_COLUMN[c] for c in columns], dtype=np.int64)
            disabled = tuple(sorted(set(disabled) | (set(FEATURE_NAMES) - set(columns))))
        self.disabled = tuple(disabled)
        self._no_story = {"story_clicks", "hours_since_story_click"} <= set(self.disabled)
        self.recent_clicks = recent_clicks
        self.sim_clicks = min(sim_clicks, recent_clicks)
        self.profile_decay = profile_decay
        self.ctr_prior = ctr_prior
        self.ctr_strength = ctr_strength
        self.serve_position = serve_position
        self.affinity_prior = affinity_prior
        if recent_exposures < 0:
            raise ValueError(f"recent_exposures must be >= 0, got {recent_exposures}")
        self.recent_exposures = int(recent_exposures)

    @property
    def exposures_read(self) -> int:
        """Exposures per user build() uses from `RankingInputs.exposure_idx`: recent_exposures,
        or 0 when story_exposures is disabled (callers then read none)."""
        return 0 if "story_exposures" in self.disabled else self.recent_exposures

    @property
    def wants_exposures(self) -> bool:
        return self.exposures_read > 0

    def params(self) -> dict[str, float | list[str]]:
        return {"recent_clicks": self.recent_clicks, "sim_clicks": self.sim_clicks,
                "profile_decay": self.profile_decay, "ctr_prior": self.ctr_prior,
                "ctr_strength": self.ctr_strength, "serve_position": self.serve_position,
                "affinity_prior": self.affinity_prior, "story_sim": self.story_sim,
                "recent_exposures": self.recent_exposures, "disabled": list(self.disabled)}

    # -- user side ----------------------------------------------------------------------------
    def click_weights(self, click_idx: np.ndarray) -> np.ndarray:
        """Recency weights (Q, L): profile_decay**rank for known clicks, 0 for padding."""
        ranks = np.arange(click_idx.shape[1], dtype=np.float64)
        return (self.profile_decay ** ranks)[None, :] * (click_idx >= 0)

    def user_profiles(self, catalog: CatalogArrays, click_idx: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(profile (Q, dim) float32: weighted mean click embedding, zeros without clicks;
        affinity (Q, C) float64: weighted category shares of the clicks).

        A sparse (Q, N) weight matrix times the embeddings, so memory is O(Q * dim), not
        O(Q * L * dim). One user (every request) takes a dense path with the same arithmetic
        in the same order, without building a sparse matrix."""
        if len(click_idx) == 1:
            one = self._user_profile(catalog, click_idx[0])
            if one is not None:
                return one
        w = self.click_weights(click_idx)
        total = w.sum(axis=1, keepdims=True)
        wn = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        valid = click_idx >= 0
        rows = np.broadcast_to(np.arange(len(click_idx))[:, None], click_idx.shape)[valid]
        cols = click_idx[valid]
        n_art = len(catalog.embeddings) if len(cols) == 0 else max(int(cols.max()) + 1, 1)
        weights = sp.csr_matrix((wn[valid].astype(np.float32), (rows, cols)),
                                shape=(len(click_idx), n_art))
        profile = np.asarray(weights @ catalog.embeddings[:n_art], dtype=np.float32)
        n_cat = max(len(catalog.categories), 1)
        affinity = np.zeros((len(click_idx), n_cat), dtype=np.float64)
        np.add.at(affinity, (rows, catalog.category[cols]), wn[valid])
        return profile, affinity

    def _user_profile(self, catalog: CatalogArrays, clicks: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray] | None:
        """`user_profiles` of one user (L,) -> ((1, dim), (1, C)), bit for bit, or None when
        it cannot promise that. scipy sums the weights of a repeated article in float32, then
        accumulates weight * embedding row by row in ascending article order, in float32.
        The order in which it adds three or more repeats of one article is its sort's
        business, so such users (rare) take the sparse path; two repeats commute."""
        w = self.click_weights(clicks[None, :])[0]
        total = w.sum()
        wn = w / total if total > 0 else np.zeros_like(w)
        valid = clicks >= 0
        cols = clicks[valid]
        data = wn[valid].astype(np.float32)
        n_cat = max(len(catalog.categories), 1)
        affinity = np.zeros((1, n_cat), dtype=np.float64)
        profile = np.zeros((1, catalog.embeddings.shape[1]), dtype=np.float32)
        if len(cols) == 0:
            return profile, affinity
        order = np.argsort(cols, kind="stable")
        cols, data = cols[order], data[order]
        first = np.ones(len(cols), dtype=bool)
        first[1:] = cols[1:] != cols[:-1]
        if not first.all():  # repeated clicks: one weight per article
            starts = np.flatnonzero(first)
            if np.diff(np.append(starts, len(cols))).max() > 2:
                return None
            summed = data[starts].copy()
            for j in np.flatnonzero(~first).tolist():  # the second of a pair, after the first
                summed[np.searchsorted(starts, j - 1)] += data[j]  # float32 + float32
            cols, data = cols[starts], summed
        np.add.at(affinity[0], catalog.category[clicks[valid]], wn[valid])
        rows = data[:, None] * catalog.embeddings[cols]  # float32 products
        acc = rows[0].copy()
        for r in rows[1:]:
            acc += r
        profile[0] = acc
        return profile, affinity

    # -- the matrix -----------------------------------------------------------------------------
    def build(self, inputs: RankingInputs, catalog: CatalogArrays, *,
              coclick: PairScorer | None = None, cf: PairScorer | None = None,
              profiles: tuple[np.ndarray, np.ndarray] | None = None,
              article_embeddings: np.ndarray | None = None) -> np.ndarray:
        """Feature matrix (R, len(FEATURE_NAMES)) float32 for every row of `inputs`.

        `profiles`: `user_profiles(catalog, inputs.click_idx)` when the caller already has it
        (the recommender computed it for candidate generation); `article_embeddings`:
        catalog.embeddings of each row's article (R, dim), when the caller gathered them."""
        q, a = inputs.row_query, inputs.row_article
        known = a >= 0
        safe_a = np.where(known, a, 0)
        n_rows = len(a)
        out = np.zeros((n_rows, len(FEATURE_NAMES)), dtype=np.float32)
        col = _COLUMN

        out[:, col["position"]] = inputs.position
        # articles outside the catalog have no publish time: age is missing (NaN, which the
        # trees route on their own), never "just published"; decay_ratio stands in for it
        age = np.where(known, (inputs.now - catalog.published[safe_a]) / 3600.0, np.nan)
        out[:, col["age_hours"]] = np.maximum(age, 0.0)
        # share of the editorial shelf life (publish -> expiry) already gone: a short-lived
        # breaking story and a week-long feature of the same age are not equally stale.
        # NaN without an expiry time or outside the catalog.
        life = catalog.expires[safe_a] - catalog.published[safe_a]
        has_life = known & np.isfinite(life) & (life > 0)
        out[:, col["shelf_life_elapsed"]] = np.where(
            has_life, np.maximum(age, 0.0) * 3600.0 / np.where(has_life, life, 1.0), np.nan)
        # the store's statistics are keyed by id, so they are real for unknown articles too
        dc, di, cc, ci = (inputs.stats[:, j] for j in range(4))
        out[:, col["log_decayed_clicks"]] = np.log1p(dc)
        out[:, col["log_decayed_impressions"]] = np.log1p(di)
        prior = self.ctr_strength * self.ctr_prior
        out[:, col["smoothed_ctr"]] = (dc + prior) / (di + self.ctr_strength)
        out[:, col["log_clicks"]] = np.log1p(cc)
        out[:, col["log_impressions"]] = np.log1p(ci)
        # CTR over the article's whole life (the decayed one follows the last hours)
        out[:, col["lifetime_ctr"]] = (cc + prior) / (ci + self.ctr_strength)
        # decayed / raw impressions: ~1 for an article first shown minutes ago, -> 0 as its
        # traffic ages; a freshness signal that needs no publish time (NaN before any view)
        out[:, col["decay_ratio"]] = np.where(ci > 0, di / np.maximum(ci, 1.0), np.nan)

        n_cat = max(len(catalog.categories), 1)
        if profiles is None or profiles[1].shape[1] != n_cat:  # (a category added since)
            profiles = self.user_profiles(catalog, inputs.click_idx)
        profile, affinity = profiles
        emb_a = catalog.embeddings[safe_a] if article_embeddings is None else article_embeddings
        # one user (serving): one BLAS product, no (R, dim) copy of the profile
        sim = (emb_a @ profile[0] if len(profile) == 1
               else np.einsum("rd,rd->r", profile[q], emb_a))
        out[:, col["content_sim"]] = np.where(known, sim, 0.0)
        best, story, story_age = self._click_sims(inputs, catalog, emb_a)
        out[:, col["max_click_sim"]] = np.where(known, best, 0.0)
        out[:, col["story_clicks"]] = np.where(known, np.log1p(story), 0.0)
        out[:, col["hours_since_story_click"]] = np.where(known, story_age, NO_CLICK_HOURS)
        aff = affinity[q, np.minimum(catalog.category[safe_a], affinity.shape[1] - 1)]
        out[:, col["category_affinity"]] = np.where(known, aff, 0.0)
        # unweighted count of the user's recent clicks in the article's category: the model
        # can tell a share of 1.0 from one click apart from one out of forty
        counts = self._code_counts(inputs, catalog.category, catalog.category[safe_a])
        out[:, col["category_log_clicks"]] = np.where(known, np.log1p(counts), 0.0)

        n_clicks = (inputs.click_idx >= 0).sum(axis=1)
        # Bayesian topic interest: the share of the user's clicks in the article's category
        # under a uniform Dirichlet prior of `affinity_prior` pseudo-clicks, on the log scale
        # log(1 + C * share) (1 = average interest), so a new user sits at the average and
        # one click out of one is not read as certainty
        share = (counts + self.affinity_prior / n_cat) / (n_clicks[q] + self.affinity_prior)
        out[:, col["topic_interest"]] = np.where(known, np.log1p(n_cat * share), np.nan)
        out[:, col["user_log_clicks"]] = np.log1p(n_clicks)[q]
        last = inputs.click_ts[:, 0] if inputs.click_ts.shape[1] else np.full(len(n_clicks), np.nan)
        since = (inputs.now - last[q]) / 3600.0
        out[:, col["hours_since_last_click"]] = np.where(
            np.isnan(since), NO_CLICK_HOURS, np.clip(since, 0.0, NO_CLICK_HOURS))
        # share of the reader's recent clicks in another language than the article's (0
        # without clicks): a German article for a reader who reads only English is unlikely.
        # 0 everywhere in a one-language catalog, so there it is a constant the trees ignore
        # (a share smoothed by the click count was not: on MIND it duplicated
        # user_log_clicks and moved the fit, AUC -0.008). A disabled feature is not computed.
        if "language_mismatch" not in self.disabled:
            lang = self._code_counts(inputs, catalog.language, catalog.language[safe_a])
            nq = n_clicks[q]
            out[:, col["language_mismatch"]] = np.where(
                known & (nq > 0), 1.0 - lang / np.maximum(nq, 1), 0.0)
        if "entity_overlap" not in self.disabled:
            out[:, col["entity_overlap"]] = np.where(
                known, self._entity_overlap(inputs, catalog, catalog.entities[safe_a]), 0.0)
        if coclick is not None:
            out[:, col["coclick"]] = np.log1p(np.maximum(coclick.pair_scores(inputs), 0.0))
        if cf is not None:
            out[:, col["cf_score"]] = cf.pair_scores(inputs)
        if self.wants_exposures:
            out[:, col["story_exposures"]] = np.where(
                known, np.log1p(self._story_exposures(inputs, catalog, emb_a)), 0.0)
        for name in self.disabled:
            out[:, col[name]] = np.nan
        return out if self._select is None else out[:, self._select]

    @staticmethod
    def _code_counts(inputs: RankingInputs, codes: np.ndarray, row_code: np.ndarray
                     ) -> np.ndarray:
        """Per row: how many of the user's recent clicks share the article's code (category,
        language); `codes` (N,) is the catalog's code of every article."""
        out = np.zeros(len(row_code))
        if len(inputs.click_idx) == 1:  # one user (serving): count per code once
            clicks = inputs.click_idx[0]
            per = np.bincount(codes[clicks[clicks >= 0]])
            has = row_code < len(per)
            out[has] = per[row_code[has]]
            return out
        for lo in range(0, len(row_code), _CHUNK):
            hi = min(lo + _CHUNK, len(row_code))
            ci = inputs.click_idx[inputs.row_query[lo:hi]]
            same = (ci >= 0) & (codes[np.maximum(ci, 0)] == row_code[lo:hi, None])
            out[lo:hi] = same.sum(axis=1)
        return out

    @staticmethod
    def _entity_overlap(inputs: RankingInputs, catalog: CatalogArrays,
                        row_ent: np.ndarray) -> np.ndarray:
        """Per row: how many of the article's entities (row_ent (R, E), -1 padded) occur
        among the entities of the user's recent clicks. Integer counts, so the single-user
        path and the general one agree exactly."""
        out = np.zeros(len(row_ent))
        if len(row_ent) == 0 or row_ent.shape[1] == 0:
            return out
        if len(inputs.click_idx) == 1:  # one user (serving): the reader's entities once
            clicks = inputs.click_idx[0]
            mine = catalog.entities[clicks[clicks >= 0]].ravel()
            mine = np.unique(mine[mine >= 0])
            if len(mine):  # a sorted lookup: cheaper than np.isin at these sizes
                pos = np.minimum(np.searchsorted(mine, row_ent), len(mine) - 1)
                out[:] = np.count_nonzero((mine[pos] == row_ent) & (row_ent >= 0), axis=1)
            return out
        # every (query, entity) of the clicks as one int64 key, sorted; rows look theirs up
        n_ent = int(catalog.entities.max(initial=-1)) + 1
        if n_ent == 0:
            return out
        ci = inputs.click_idx
        ents = catalog.entities[np.maximum(ci, 0)]  # (Q, L, E)
        ok = (ci >= 0)[:, :, None] & (ents >= 0)
        qq = np.broadcast_to(np.arange(len(ci), dtype=np.int64)[:, None, None], ents.shape)
        keys = np.unique(qq[ok] * n_ent + ents[ok])
        if len(keys) == 0:
            return out
        rk = inputs.row_query[:, None].astype(np.int64) * n_ent + row_ent
        pos = np.minimum(np.searchsorted(keys, rk), len(keys) - 1)
        out[:] = np.count_nonzero((keys[pos] == rk) & (row_ent >= 0), axis=1)
        return out

    def _story_exposures(self, inputs: RankingInputs, catalog: CatalogArrays,
                         emb_a: np.ndarray) -> np.ndarray:
        """Per row: how many of the user's recent exposures lie within story_sim cosine of the
        row's article (0 when the exposures were not read). One (rows x M) product per
        query: a (rows, M, dim) gather would cost gigabytes on a training set."""
        out = np.zeros(len(emb_a))
        exp = inputs.exposure_idx
        if exp is None or exp.shape[1] == 0 or len(emb_a) == 0:
            return out
        exp = exp[:, :self.recent_exposures]
        q = inputs.row_query
        order = np.argsort(q, kind="stable")
        bounds = np.searchsorted(q[order], np.arange(len(exp) + 1))
        for u in np.flatnonzero(np.diff(bounds) > 0).tolist():
            e = exp[u]
            # a reader is shown the same articles again and again: one column per article,
            # weighted by how often it was shown (exact: integer counts)
            e, times = np.unique(e[e >= 0], return_counts=True)
            if len(e) == 0:
                continue
            rows = order[bounds[u]:bounds[u + 1]]
            sims = emb_a[rows] @ catalog.embeddings[e].T
            out[rows] = (sims >= self.story_sim) @ times
        return out

    def _click_sims(self, inputs: RankingInputs, catalog: CatalogArrays, emb_a: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """From the cosines between each row's article and the user's sim_clicks newest
        clicks, per row: (max cosine (0 without clicks), number of clicks at >= story_sim,
        hours since the newest of those (NO_CLICK_HOURS when none))."""
        s = self.sim_clicks
        clicks = inputs.click_idx[:, :s]
        n_rows = len(emb_a)
        best = np.zeros(n_rows, dtype=np.float32)
        story = np.zeros(n_rows)
        hours = np.full(n_rows, NO_CLICK_HOURS)
        if s == 0 or clicks.shape[1] == 0 or n_rows == 0:
            return best, story, hours
        ts = inputs.click_ts[:, :s]
        if len(clicks) == 1:  # one user (serving): its s click vectors once, not once a row
            c = clicks[0]
            # one BLAS product (several times faster than einsum's loops); it sums in another
            # order than the batch path, so the two agree to float32 rounding, not bit for bit
            sims = emb_a @ catalog.embeddings[np.where(c >= 0, c, 0)].T
            self._reduce_sims(np.broadcast_to(c >= 0, sims.shape), sims, inputs.now,
                              np.broadcast_to(ts[0], sims.shape), slice(0, n_rows),
                              best, story, hours)
            return best, story, hours
        for lo in range(0, n_rows, _CHUNK):
            hi = min(lo + _CHUNK, n_rows)
            qi = inputs.row_query[lo:hi]
            ci = clicks[qi]  # (r, s)
            e = catalog.embeddings[np.where(ci >= 0, ci, 0)]  # (r, s, d)
            sims = np.einsum("rsd,rd->rs", e, emb_a[lo:hi])
            self._reduce_sims(ci >= 0, sims, inputs.now[lo:hi], ts[qi], slice(lo, hi),
                              best, story, hours)
        return best, story, hours

    def _reduce_sims(self, valid: np.ndarray, sims: np.ndarray, now: np.ndarray,
                     click_ts: np.ndarray, rows: slice, best: np.ndarray, story: np.ndarray,
                     hours: np.ndarray) -> None:
        """Write the three `_click_sims` figures of (r, s) cosines into rows of the outputs.
        Clicks are newest first, so the newest story click is the first one at story_sim."""
        m = np.where(valid, sims, -np.inf)
        top = m.max(axis=1)
        best[rows] = np.where(np.isfinite(top), top, 0.0)
        if self._no_story:  # both story features disabled: max_click_sim only, as before
            return
        same = m >= self.story_sim  # padding (-inf) never is
        n_same = np.count_nonzero(same, axis=1)
        story[rows] = n_same
        first = same.argmax(axis=1)
        newest = (now - np.take_along_axis(click_ts, first[:, None], axis=1)[:, 0]) / 3600.0
        hours[rows] = np.where((n_same > 0) & np.isfinite(newest),
                               np.clip(newest, 0.0, NO_CLICK_HOURS), NO_CLICK_HOURS)
