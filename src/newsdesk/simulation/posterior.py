"""Information-limited references: the oracle with latent facts estimated the Bayes way.

The oracle (`World.attraction`) knows every reader's topic interests theta and every article's
quality q. A recommender has to learn them from the log. These references keep the TRUE click
model, its parameters and every other latent fact, and replace some of them by their posterior
given what was logged before the request:

* `LatentPosterior`: the reader's topic interests theta[u] (from their Dirichlet prior), and in
  world v2 whether they follow each story (from its prior given theta and their entities), or
  both jointly, given the reader's pre-log history and every impression shown to the reader
  before t (clicks and skips, through the true click model).
* `QualityPosterior`: q[a] from its N(0, 1) prior and every impression of the article before t.

`LatentPosterior(quality=QualityPosterior(...))` estimates both (the two posteriors taken as
independent). `LatentPosterior(skips=False)` learns from the reader's clicks alone, as a
system that does not keep what each reader was shown: the difference is what per-reader
exposure history is worth.

Each scores E[attraction | what was logged], the Bayes ranking score for expected clicks. It
knows more than any recommender (the rest of the truth, the model's form and parameters), so the
gap between it and the oracle is the part of the oracle's lead that a model trained on the
same log cannot be expected to close (an estimate, not a proven bound). Approximations: the
posterior of theta is importance-sampled (the proposal:
`LatentPosterior._proposal`; `mean_ess` reports the effective sample size), q's lives on a
grid; v2's device is marginalised per shown item with the reader's mobile share; v2 histories
count as independent draws in proportion to the attraction (they were drawn without
replacement); dismissals are not used; an impression counts with its final label from its own
time on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from newsdesk.features.training_log import LogArrays
from newsdesk.simulation.world import World
from newsdesk.simulation.world_v2 import MAX_FOLLOW_P

HOUR = 3600.0
Q_GRID = np.linspace(-4.0, 4.0, 49)  # q ~ N(0, 1): +-4 sd holds all but 6e-5 of the prior
FIT_ABOVE_CLICKS = 8  # readers with this many clicks get a proposal fitted to their posterior
T_DF = 4.0  # the fitted proposal's tails: a multivariate t, heavier than the posterior's


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _is_v2(world: World) -> bool:
    return getattr(world.config, "world", "v1") == "v2"


def _examination(world: World, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """P(examined): v1's position bias; v2's mixed over the reader's devices (the log does not
    keep the device of a request)."""
    if not _is_v2(world):
        return world.examination(positions)
    m = world.user_mobile[users]  # type: ignore[attr-defined]
    return m * world.examination(positions, 1) + (1 - m) * world.examination(positions, 0)  # type: ignore[call-arg]


@dataclass
class _Shown:
    """Logged exposures in world indices, sorted by (key, ts); `start[i]` is where key i's
    rows begin (`key` = user or article)."""

    ts: np.ndarray
    user: np.ndarray
    art: np.ndarray
    label: np.ndarray
    exam: np.ndarray
    fresh: np.ndarray
    logit: np.ndarray  # the TRUE click logit of the exposure
    start: np.ndarray

    def rows(self, key: int) -> slice:
        return slice(int(self.start[key]), int(self.start[key + 1]))


def _shown(world: World, log: LogArrays, by: str, keep: np.ndarray | None) -> _Shown:
    """The log's exposures whose `by` ("user" or "article") index is in `keep` (all if None)."""
    u_of = world.user_index(np.asarray(log.events.user_ids))
    a_of = world.article_index(np.asarray([a.article_id for a in log.articles]))
    ex = log.exposures.filter(log.exposures["aidx"] >= 0)
    user = u_of[ex["ucode"].to_numpy()]
    art = a_of[ex["aidx"].to_numpy()]
    key = user if by == "user" else art
    sel = np.ones(len(key), bool) if keep is None else np.isin(key, keep)
    ts = ex["ts"].to_numpy()[sel]
    user, art, key = user[sel], art[sel], key[sel]
    order = np.lexsort((ts, key))
    ts, user, art, key = ts[order], user[order], art[order], key[order]
    pos = ex["pos"].to_numpy()[sel][order]
    label = ex["label"].to_numpy()[sel][order].astype(bool)
    size = world.n_users if by == "user" else world.n_articles
    return _Shown(ts=ts, user=user, art=art, label=label,
                  exam=_examination(world, user, pos), fresh=world.freshness(art, ts),
                  logit=world.logit(user, art, ts),
                  start=np.searchsorted(key, np.arange(size + 1)))


def _log_lik(p: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Log-likelihood of clicks / skips with click probabilities p (..., m); sum over m."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.where(label, np.log(p), np.log1p(-p)).sum(axis=-1)


def _log_dirichlet_z(theta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """log Dirichlet(theta; alpha) as a density of z = log(theta[:-1] / theta[-1]) (the
    Jacobian of theta = softmax(z, 0) is prod(theta))."""
    norm = math.lgamma(float(alpha.sum())) - sum(math.lgamma(float(a)) for a in alpha)
    return norm + (np.log(theta) * alpha).sum(axis=-1)


def _to_z(theta: np.ndarray) -> np.ndarray:
    return np.log(theta[:, :-1]) - np.log(theta[:, -1:])


def _from_z(z: np.ndarray) -> np.ndarray:
    full = np.concatenate([z, np.zeros((len(z), 1))], axis=1)
    full -= full.max(axis=1, keepdims=True)
    theta = np.exp(full)
    theta /= theta.sum(axis=1, keepdims=True)
    return np.clip(theta, 1e-300, None)


class _Reference:
    """What the two references share: incremental posteriors per key, fed in time order."""

    def __init__(self, world: World, shown: _Shown) -> None:
        self.world = world
        self.shown = shown
        self._next: dict[int, int] = {}  # key -> first exposure not yet in its posterior
        self._until: dict[int, float] = {}

    def _advance(self, key: int, t: float) -> tuple[np.ndarray, bool]:
        """(the exposure rows of `key` logged since its previous call and before t, whether
        its posterior starts afresh: the first call, or `t` went back in time; the rows then
        run from the key's first exposure)."""
        restart = t < self._until.get(key, -np.inf) or key not in self._next
        rows = self.shown.rows(key)
        lo = rows.start if restart else self._next[key]
        hi = lo + int(np.searchsorted(self.shown.ts[lo:rows.stop], t, side="left"))
        self._next[key], self._until[key] = hi, t
        return np.arange(lo, hi), restart


class LatentPosterior(_Reference):
    """The oracle with the reader's latent facts replaced by their posterior (module doc):
    `interests` theta[u] (importance-sampled), `stories` (world v2) whether u follows each
    story, exactly (two values per story, given theta), or both jointly; with `quality`, the
    articles' q as well. `attraction` has the oracle's signature; the calls for one reader
    must come in time order to be cheap."""

    def __init__(self, world: World, log: LogArrays, users: np.ndarray | None = None,
                 n_samples: int = 1000, seed: int = 0, *, interests: bool = True,
                 stories: bool = False, quality: QualityPosterior | None = None,
                 skips: bool = True) -> None:
        if stories and not _is_v2(world):
            raise ValueError("stories: only a v2 world has stories")
        super().__init__(world, _shown(world, log, "user", users))
        # skips=False: what a system that keeps the reader's clicks but not what they were
        # shown can learn (the likelihood of the clicks alone; a skip is unobserved)
        self.skips = skips
        # with `quality`, the scores average over the articles' quality posteriors too (the
        # two posteriors are taken as independent, each learned with the other at its truth)
        self.quality = quality
        c = world.config
        self.interests, self.stories = interests, stories
        self.n_samples = n_samples if interests else 1
        self.seed = seed
        self.alpha = np.full(world.n_topics, c.interest_concentration)
        sh = self.shown
        self._rest = sh.logit - self._true_terms(sh.user, sh.art)
        self._story = (world.article_story[sh.art] if stories  # type: ignore[attr-defined]
                       else np.full(sh.art.shape, -1))
        u_of = world.user_index(np.asarray(log.events.user_ids))
        a_of = world.article_index(np.asarray([a.article_id for a in log.articles]))
        hist_u = u_of[log.events.hist_user]
        hist_a = a_of[log.events.hist_article]
        order = np.argsort(hist_u, kind="stable")
        self._hist_u, self._hist_a = hist_u[order], hist_a[order]
        self._hist_start = np.searchsorted(self._hist_u, np.arange(world.n_users + 1))
        self._backlog = np.flatnonzero(world.article_published < c.start_unix)
        # u -> theta samples (S, K), log weight without the stories, per story: the log
        # likelihood of what the reader saw of it if they follow it / if not, each (S,)
        self._state: dict[int, tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]] = {}
        self._ess_sum, self._ess_n = 0.0, 0
        self._follow_base: dict[tuple[int, int], float] = {}
        self._history_parts: dict[int, tuple[np.ndarray, ...]] = {}

    def _true_terms(self, users: np.ndarray, arts: np.ndarray, stories: bool = True
                    ) -> np.ndarray:
        """The logit terms this reference estimates, at their true values (`stories=False`:
        without the story term)."""
        w, c = self.world, self.world.config
        out = np.zeros(arts.shape)
        if self.interests:
            out += c.interest_weight * np.log1p(
                w.n_topics * w.user_theta[users, w.article_topic[arts]])
        if self.stories and stories:
            out += c.story_weight * w.follows_story(  # type: ignore[attr-defined]
                users, w.article_story[arts])  # type: ignore[attr-defined]
        return out

    def _topic_term(self, theta: np.ndarray, arts: np.ndarray) -> np.ndarray:
        """interest_weight * log1p(K theta_s[topic(a)]), (S, len(arts)); 0 with the true
        theta (then it is in `rest`)."""
        if not self.interests:
            return np.zeros((1, arts.size))
        w = self.world
        return w.config.interest_weight * np.log1p(w.n_topics * theta[:, w.article_topic[arts]])

    def _start(self, u: int) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """The reader's theta samples and their log weights after the pre-log history."""
        w = self.world
        hist = self._hist_a[self._hist_start[u]:self._hist_start[u + 1]]
        if not self.interests:
            theta = w.user_theta[u][None, :].astype(np.float64)
            logw = np.zeros(1)
        else:
            theta, log_q = self._proposal(u, hist)
            logw = _log_dirichlet_z(theta, self.alpha) - log_q
        per_story: dict[int, np.ndarray] = {}
        logw = logw + self._history_lik(u, theta, hist, per_story)
        return theta, logw, per_story

    def _proposal(self, u: int, hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples of theta and their log density in the additive-logistic coordinates z
        (theta = softmax(z, 0)), from a mixture of: the prior, a Dirichlet around the topics
        of the reader's clicks, and for a reader with enough clicks, a multivariate t around
        the posterior's mode given the whole log, at two widths. The weights later see only
        what was logged before t; a proposal may use more (importance sampling stays exact)
        and the broad parts cover the early, wider posteriors."""
        w, K = self.world, self.world.n_topics
        rows = self.shown.rows(u)
        clicked = self.shown.art[rows][self.shown.label[rows]]
        counts = np.bincount(w.article_topic[np.concatenate([hist, clicked])], minlength=K)
        rng = np.random.default_rng([self.seed, u])
        dirichlets = [self.alpha, self.alpha + counts]
        mode = self._mode(u, hist, counts) if counts.sum() >= FIT_ABOVE_CLICKS else None
        parts = len(dirichlets) + (2 if mode is not None else 0)
        sizes = np.diff(np.linspace(0, self.n_samples, parts + 1).astype(int))
        z_parts = [_to_z(np.clip(rng.dirichlet(a, n), 1e-12, None))
                   for a, n in zip(dirichlets, sizes, strict=False)]
        ts = []
        if mode is not None:
            loc, cov = mode
            ts = [stats.multivariate_t(loc=loc, shape=cov * widen, df=T_DF)
                  for widen in (1.0, 9.0)]
            z_parts += [np.atleast_2d(t.rvs(size=n, random_state=rng))
                        for t, n in zip(ts, sizes[len(dirichlets):], strict=True)]
        z = np.vstack(z_parts)
        theta = _from_z(z)
        comps = [_log_dirichlet_z(theta, a) for a in dirichlets] + [t.logpdf(z) for t in ts]
        log_q = np.logaddexp.reduce(np.stack(comps), axis=0) - math.log(parts)
        return theta, log_q

    def _mode(self, u: int, hist: np.ndarray, counts: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """The posterior's mode in z given the whole log and the inverse Hessian there (BFGS's
        estimate), or None if the fit fails."""
        rows = np.arange(self.shown.rows(u).start, self.shown.rows(u).stop)

        def neg_log_post(z: np.ndarray) -> tuple[float, np.ndarray]:
            # the point and its forward-difference neighbours as one batch of samples
            step = 1e-5
            batch = np.vstack([z, z + step * np.eye(len(z))])
            theta = _from_z(batch)
            per_story: dict[int, np.ndarray] = {}
            lp = (_log_dirichlet_z(theta, self.alpha)
                  + self._history_lik(u, theta, hist, per_story)
                  + self._rows_lik(theta, rows, per_story))
            lp = lp + self._stories_marginal(u, theta, per_story)[0]
            return -float(lp[0]), -(lp[1:] - lp[0]) / step

        start = _to_z(((self.alpha + counts) / (self.alpha + counts).sum())[None, :])[0]
        try:
            res = optimize.minimize(neg_log_post, start, jac=True, method="BFGS",
                                    options={"gtol": 1e-3, "maxiter": 200})
            cov = np.asarray(res.hess_inv)
            cov = (cov + cov.T) / 2 + 1e-6 * np.eye(len(cov))
            np.linalg.cholesky(cov)  # positive definite, or the fit is not usable
        except (np.linalg.LinAlgError, ValueError):
            return None
        return res.x, cov

    def _rows_lik(self, theta: np.ndarray, rows: np.ndarray,
                  per_story: dict[int, np.ndarray]) -> np.ndarray:
        """Log-likelihood (S,) of the exposure `rows` outside stories; with `stories`, the
        rows of story articles go to `per_story` (if followed / if not)."""
        s = self.shown
        if not self.skips:
            rows = rows[s.label[rows]]
        if rows.size == 0:
            return np.zeros(len(theta))
        logit = self._rest[rows] + self._topic_term(theta, s.art[rows])
        scale = s.exam[rows] * s.fresh[rows]
        story, label = self._story[rows], s.label[rows]
        plain = story < 0
        out = _log_lik(scale[plain] * _sigmoid(logit[:, plain]), label[plain])
        for s_id in np.unique(story[~plain]):
            m = story == s_id
            lik = self._story_lik(logit[:, m], np.log(scale[m]), label[m])
            per_story[int(s_id)] = per_story.get(int(s_id), 0.0) + lik
        return np.broadcast_to(out, (len(theta),))

    def _stories_marginal(self, u: int, theta: np.ndarray, per_story: dict[int, np.ndarray]
                          ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Sum over the stories the reader saw of log P(what they did with it) with follow
        marginalised out, (S,); and per story the log posterior odds of following it."""
        total = np.zeros(len(theta))
        odds: dict[int, np.ndarray] = {}
        for s_id, lik in per_story.items():
            lp1, lp0 = self._follow_log_odds(u, theta, s_id)
            a1, a0 = lp1 + lik[0], lp0 + lik[1]
            total += np.logaddexp(a1, a0)
            odds[s_id] = a1 - a0
        return total, odds

    def _history_lik(self, u: int, theta: np.ndarray, hist: np.ndarray,
                     per_story: dict[int, np.ndarray]) -> np.ndarray:
        """Log-likelihood of the pre-log history: v1 draws a topic from theta, then an article
        of it uniformly; v2 draws articles in proportion to their attraction 1 h after
        publication (the normaliser is taken at the true story follows). With `stories`,
        the terms of story articles go to `per_story`."""
        w = self.world
        if hist.size == 0 or (not self.interests and not self.stories):
            return np.zeros(len(theta))
        if not _is_v2(w):
            return np.log(theta[:, w.article_topic[hist]]).sum(axis=1)
        back = self._backlog
        if u not in self._history_parts:  # what does not depend on theta, once per reader
            t_seen = w.article_published[back] + HOUR
            uu = np.full(back.size, u)
            logit = w.logit(uu, back, t_seen)
            self._history_parts[u] = (logit - self._true_terms(uu, back),
                                      w.freshness(back, t_seen),
                                      logit - self._true_terms(uu, back, stories=False))
        rest, fresh, norm_rest = self._history_parts[u]
        topic = self._topic_term(theta, back)
        # the normaliser: every backlog article, at the true follows
        log_norm = np.log((fresh * _sigmoid(norm_rest + topic)).sum(axis=1))
        where = np.searchsorted(back, hist)
        out = -hist.size * log_norm
        story = (w.article_story[hist] if self.stories  # type: ignore[attr-defined]
                 else np.full(hist.size, -1))
        base = rest[where] + topic[:, where]
        plain = story < 0
        out = out + np.log(fresh[where][plain] * _sigmoid(base[:, plain])).sum(axis=1)
        for s_id in np.unique(story[~plain]):
            m = story == s_id
            lik = self._story_lik(base[:, m], np.log(fresh[where][m]), None)
            per_story[int(s_id)] = per_story.get(int(s_id), 0.0) + lik
        return out

    def _story_lik(self, logit: np.ndarray, log_scale: np.ndarray,
                   label: np.ndarray | None) -> np.ndarray:
        """(2, S): the log-likelihood of a story's rows if the reader follows it (row 0) or
        not (row 1). `label` None: history draws (log attraction); else clicks / skips of
        exposures with click probability exp(log_scale) * sigmoid(logit)."""
        ws = self.world.config.story_weight
        out = []
        for lg in (logit + ws, logit):
            if label is None:
                out.append((log_scale + np.log(_sigmoid(lg))).sum(axis=-1))
            else:
                out.append(_log_lik(np.exp(log_scale) * _sigmoid(lg), label))
        return np.stack(out)

    def _follow_log_odds(self, u: int, theta: np.ndarray, story: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """log P(follows) and log P(not) under the prior, per sample: (S,), (S,)."""
        w, c = self.world, self.world.config
        if (u, story) not in self._follow_base:  # the part of the prior theta does not move
            self._follow_base[(u, story)] = float(w.follow_probability(  # type: ignore[attr-defined]
                u, story, theta=np.zeros(1))[0])
        s_topic = w.story_topic[story]  # type: ignore[attr-defined]
        p = np.minimum(MAX_FOLLOW_P, self._follow_base[(u, story)]
                       + c.story_follow_rate * w.n_topics * theta[:, s_topic])
        return np.log(p), np.log1p(-p)

    def _posterior(self, u: int, t: float
                   ) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """theta samples, their normalised weights and, per story the reader saw, the log
        posterior odds of following it per sample."""
        rows, restart = self._advance(u, t)
        if restart:
            self._state[u] = self._start(u)
        theta, logw, per_story = self._state[u]
        if rows.size:
            logw = logw + self._rows_lik(theta, rows, per_story)
            self._state[u] = (theta, logw, per_story)
        marginal, odds = self._stories_marginal(u, theta, per_story)
        total = logw + marginal
        wt = np.exp(total - total.max())
        wt /= wt.sum()
        self._ess_sum += float(1.0 / np.square(wt).sum())
        self._ess_n += 1
        return theta, wt, odds

    @property
    def mean_ess(self) -> float:
        """The mean effective sample size of the posteriors handed out so far."""
        return self._ess_sum / self._ess_n if self._ess_n else float("nan")

    def attraction(self, users: Any, articles: Any, t: float) -> np.ndarray:
        """E[attraction | the log before t] for each (user, article) pair at one time t."""
        w = self.world
        a = np.asarray(w.article_index(articles))
        u = np.broadcast_to(w.user_index(users), a.shape)
        rest = w.logit(u, a, t) - self._true_terms(u, a)
        story = (w.article_story[a] if self.stories  # type: ignore[attr-defined]
                 else np.full(a.shape, -1))
        out = np.empty(a.shape)
        for uu in np.unique(u):
            m = np.flatnonzero(u == uu)
            theta, wt, odds = self._posterior(int(uu), float(t))
            logit = rest[m] + self._topic_term(theta, a[m])  # (S, n)
            click = self._click_given(a[m], t)
            p = click(logit)
            followed_all = click(logit + w.config.story_weight) if (story[m] >= 0).any() \
                else None
            for j, s_id in enumerate(story[m]):
                if s_id < 0 or followed_all is None:
                    continue
                if int(s_id) in odds:
                    follow = _sigmoid(odds[int(s_id)])
                else:
                    lp1, _ = self._follow_log_odds(int(uu), theta, int(s_id))
                    follow = np.exp(lp1)
                p[:, j] = follow * followed_all[:, j] + (1.0 - follow) * p[:, j]
            out[m] = wt @ p
        return out * w.freshness(a, t)

    def _click_given(self, arts: np.ndarray, t: float) -> Any:
        """logit (S, n) -> sigmoid, averaged over the articles' quality posteriors when the
        quality is estimated too (`quality`)."""
        if self.quality is None:
            return _sigmoid
        post = self.quality.posteriors(arts, t)  # (n, G)
        shift = self.quality.shift(arts)  # (n, G): the grid's q in place of the true one

        def click(logit: np.ndarray) -> np.ndarray:
            return (post[None] * _sigmoid(logit[..., None] + shift[None])).sum(axis=-1)
        return click


class QualityPosterior(_Reference):
    """The oracle with q[a] replaced by its posterior on a grid (module doc)."""

    def __init__(self, world: World, log: LogArrays, articles: np.ndarray | None = None
                 ) -> None:
        super().__init__(world, _shown(world, log, "article", articles))
        self._bq = world.config.quality_weight
        self._rest = self.shown.logit - self._bq * world.article_quality[self.shown.art]
        self._loglik: dict[int, np.ndarray] = {}
        self._log_prior = -0.5 * Q_GRID ** 2

    def _posterior(self, a: int, t: float) -> np.ndarray:
        rows, restart = self._advance(a, t)
        if restart:
            self._loglik[a] = np.zeros(Q_GRID.size)
        if rows.size:
            s = self.shown
            p = (s.exam[rows] * s.fresh[rows])[None, :] * _sigmoid(
                self._rest[rows][None, :] + self._bq * Q_GRID[:, None])
            self._loglik[a] = self._loglik[a] + _log_lik(p, s.label[rows])
        lp = self._log_prior + self._loglik[a]
        w = np.exp(lp - lp.max())
        return w / w.sum()

    def posteriors(self, articles: np.ndarray, t: float) -> np.ndarray:
        """(n, G): each article's posterior over Q_GRID given its impressions before t."""
        return np.stack([self._posterior(int(x), float(t)) for x in np.ravel(articles)])

    def shift(self, articles: np.ndarray) -> np.ndarray:
        """(n, G): what replacing the true q by each grid point adds to the logit."""
        q = self.world.article_quality[np.ravel(articles)]
        return self._bq * (Q_GRID[None, :] - q[:, None])

    def attraction(self, users: Any, articles: Any, t: float) -> np.ndarray:
        w = self.world
        a = w.article_index(articles)
        u = np.broadcast_to(w.user_index(users), a.shape)
        logit = w.logit(u, a, t).ravel()
        p = (self.posteriors(a, t) * _sigmoid(logit[:, None] + self.shift(a))).sum(axis=1)
        return p.reshape(a.shape) * w.freshness(a, t)
