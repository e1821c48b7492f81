"""`World`: the latent state of a simulated news world and its TRUE click model.

Ids map to indices by construction: user index i is "u{i}", article index j is "a{j}" (articles
are numbered in publication order). Every method takes indices or ids, and broadcasts its
array arguments with numpy rules. Times are unix seconds (float).

Click model (position-based model; clicks in one slate are independent given the slate)::

    P(click | u, a, t, k) = exam(k) * attraction(u, a, t)
    exam(k)               = (1 + k) ** -position_eta                 k = 0-based slate position
    attraction(u, a, t)   = sigmoid(click_bias
                                    + interest_weight * log1p(K * theta[u, topic(a)])
                                    + quality_weight  * quality(a))
                            * freshness(a, t)
    freshness(a, t)       = 2 ** (-(t - published_at(a)) / half_life(a))  for t >= published_at
                            0                                               before publication

theta[u] is the user's Dirichlet topic-interest vector (sums to 1 over K topics, so K * theta = 1
is an average interest). A click's dwell time is lognormal::

    log dwell = log(dwell_median) + dwell_interest_weight * log1p(K theta)
                + dwell_quality_weight * quality + dwell_sigma * N(0, 1)     (clipped to 3 h)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from newsdesk.errors import DatasetError, InvalidInput
from newsdesk.simulation.config import SimulationConfig

SIM_DIR = "simulation"
WORLD_FILE = "world.npz"
CONFIG_FILE = "config.json"
MAX_DWELL_SECONDS = 3 * 3600.0
_ARRAYS = ("user_theta", "user_activity", "article_topic", "article_subtopic",
           "article_quality", "article_half_life", "article_published", "article_expires")


def diurnal(t: np.ndarray | float, peak_hour: float, amplitude: float) -> np.ndarray:
    """Relative rate 1 + A cos(2 pi (hour_of_day(t) - peak) / 24); mean 1 over a day."""
    hours = (np.asarray(t, dtype=np.float64) / 3600.0) % 24.0
    return 1.0 + amplitude * np.cos(2.0 * np.pi * (hours - peak_hour) / 24.0)


def _ids_to_index(values: Any, prefix: str, size: int, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        idx = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind in "UO":
        text = arr.astype(str)
        try:
            if not np.all(np.char.startswith(text, prefix)):
                raise ValueError(prefix)
            idx = np.char.lstrip(text, prefix).astype(np.int64)
        except ValueError as exc:
            raise InvalidInput(f"{what}: ids must look like '{prefix}123'", field=what) from exc
    else:
        raise InvalidInput(f"{what}: expected integer indices or '{prefix}N' ids, "
                           f"got dtype {arr.dtype}", field=what)
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise InvalidInput(f"{what}: index out of range [0, {size}) or unknown id", field=what)
    return idx


class World:
    """Latent users and articles plus the click model that generated the log.

    Attributes (all numpy arrays, indexed by user / article index):
        user_theta (U, K) float32       topic interests, rows sum to 1
        user_activity (U,) float64      relative request rate (mean 1, lognormal)
        article_topic (A,) int16        topic index = category index in vocab.CATEGORIES
        article_subtopic (A,) int16
        article_quality (A,) float64    latent quality, N(0, 1)
        article_half_life (A,) float64  attention half-life in seconds
        article_published (A,) float64  unix seconds (microsecond-exact, as in the table)
        article_expires (A,) float64    unix seconds; live = published <= t < expires
    """

    ARRAYS: tuple[str, ...] = _ARRAYS  # what save / load persist (subclasses add theirs)

    def __init__(self, config: SimulationConfig, **arrays: np.ndarray) -> None:
        missing = [k for k in self.ARRAYS if k not in arrays]
        if missing:
            raise InvalidInput(f"World: missing arrays {missing}", field=missing[0])
        self.config = config
        self.user_theta: np.ndarray = arrays["user_theta"]
        self.user_activity: np.ndarray = arrays["user_activity"]
        self.article_topic: np.ndarray = arrays["article_topic"]
        self.article_subtopic: np.ndarray = arrays["article_subtopic"]
        self.article_quality: np.ndarray = arrays["article_quality"]
        self.article_half_life: np.ndarray = arrays["article_half_life"]
        self.article_published: np.ndarray = arrays["article_published"]
        self.article_expires: np.ndarray = arrays["article_expires"]
        self._user_cdf: np.ndarray | None = None

    # ---- sizes and ids -------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.user_theta.shape[0])

    @property
    def n_articles(self) -> int:
        return int(self.article_topic.shape[0])

    @property
    def n_topics(self) -> int:
        return int(self.user_theta.shape[1])

    def user_index(self, users: Any) -> np.ndarray:
        """Indices of users given as indices or "u{i}" ids."""
        return _ids_to_index(users, "u", self.n_users, "users")

    def article_index(self, articles: Any) -> np.ndarray:
        """Indices of articles given as indices or "a{j}" ids."""
        return _ids_to_index(articles, "a", self.n_articles, "articles")

    # ---- the click model -----------------------------------------------------------------
    def examination(self, positions: Any) -> np.ndarray:
        """P(examine slot k) = (1 + k) ** -eta for 0-based positions k."""
        k = np.asarray(positions, dtype=np.float64)
        return (1.0 + k) ** -self.config.position_eta

    def interest(self, users: Any, articles: Any) -> np.ndarray:
        """theta[u, topic(a)]: the user's interest in the article's topic, in [0, 1]."""
        u, a = self.user_index(users), self.article_index(articles)
        return self.user_theta[u, self.article_topic[a]].astype(np.float64)

    def freshness(self, articles: Any, t: Any) -> np.ndarray:
        """2 ** (-age / half_life), 0 before publication."""
        a = self.article_index(articles)
        age = np.asarray(t, dtype=np.float64) - self.article_published[a]
        fresh = np.exp2(-np.maximum(age, 0.0) / self.article_half_life[a])
        return np.where(age >= 0.0, fresh, 0.0)

    def logit(self, users: Any, articles: Any, t: Any) -> np.ndarray:
        """The click logit before freshness (`t` is unused in v1; v2's bursts need it)."""
        c = self.config
        a = self.article_index(articles)
        return (c.click_bias
                + c.interest_weight * np.log1p(self.n_topics * self.interest(users, a))
                + c.quality_weight * self.article_quality[a])

    def attraction(self, users: Any, articles: Any, t: Any) -> np.ndarray:
        """P(click | examined): the position-free part of the click model (oracle score)."""
        a = self.article_index(articles)
        return self.freshness(a, t) / (1.0 + np.exp(-self.logit(users, a, t)))

    def click_probability(self, users: Any, articles: Any, t: Any, positions: Any) -> np.ndarray:
        """TRUE P(click) of showing `articles` to `users` at time `t` (unix s) in `positions`.

        All four arguments broadcast; returns float64 of the broadcast shape.
        """
        return self.examination(positions) * self.attraction(users, articles, t)

    def respond(self, users: Any, slates: Any, t: Any, rng: np.random.Generator) -> np.ndarray:
        """Serve slates and draw clicks from the true model: the API for simulated A/B tests.

        users: a scalar or (R,) indices/ids; slates: (S,) or (R, S) article indices/ids, in
        display order (column k = position k); t: scalar or (R,) unix seconds.
        Returns a bool click mask shaped like `slates`.
        """
        s = self.article_index(slates)
        u = np.asarray(self.user_index(users))
        tt = np.asarray(t, dtype=np.float64)
        if s.ndim == 2:  # one row per request: align per-request scalars with the rows
            u = u.reshape(-1, 1) if u.ndim == 1 else u
            tt = tt.reshape(-1, 1) if tt.ndim == 1 else tt
        positions = np.arange(s.shape[-1])
        p = self.click_probability(u, s, tt, positions)
        return rng.random(p.shape) < p

    sample_clicks = respond  # the name used in the simulator issue

    def expected_clicks(self, user: Any, slate: Any, t: float) -> float:
        """Expected number of clicks of one slate (display order) for one user at time t."""
        s = self.article_index(slate)
        return float(self.click_probability(user, s, t, np.arange(s.shape[-1])).sum())

    def oracle_slate(self, user: Any, t: float, slate_size: int,
                     candidates: Any = None) -> np.ndarray:
        """The slate maximising expected clicks: candidates (default: live at t) sorted by
        true attraction, best first (optimal because exam(k) decreases with k)."""
        cand = self.live_articles(t) if candidates is None else self.article_index(candidates)
        scores = self.attraction(user, cand, t)
        top = np.argsort(-scores, kind="stable")[:slate_size]
        return cand[top]

    def sample_dwell(self, users: Any, articles: Any, rng: np.random.Generator) -> np.ndarray:
        """Dwell seconds of clicks on `articles` by `users` (lognormal; see module doc)."""
        c = self.config
        a = self.article_index(articles)
        mu = (np.log(c.dwell_median_seconds)
              + c.dwell_interest_weight * np.log1p(self.n_topics * self.interest(users, a))
              + c.dwell_quality_weight * self.article_quality[a])
        noise = rng.standard_normal(mu.shape)
        return np.minimum(np.exp(mu + c.dwell_sigma * noise), MAX_DWELL_SECONDS)

    # ---- catalog and traffic -------------------------------------------------------------
    def live_articles(self, t: float) -> np.ndarray:
        """Indices of articles live at unix time t (published <= t < expires), ascending."""
        hi = int(np.searchsorted(self.article_published, t, side="right"))
        idx = np.arange(hi)
        return idx[self.article_expires[:hi] > t]

    def user_cdf(self) -> np.ndarray:
        """Cumulative request share of users (activity-proportional), last entry exactly 1."""
        if self._user_cdf is None:
            cdf = np.cumsum(self.user_activity, dtype=np.float64)
            self._user_cdf = cdf / cdf[-1]
        return self._user_cdf

    def sample_users(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n user indices drawn proportionally to activity."""
        idx = np.searchsorted(self.user_cdf(), rng.random(n), side="right")
        return np.minimum(idx, self.n_users - 1)

    def expected_requests(self, t0: float, t1: float) -> float:
        """Expected number of requests in [t0, t1) under the diurnal traffic model."""
        if t1 <= t0:
            return 0.0
        grid = np.linspace(t0, t1, max(2, int((t1 - t0) // 300) + 2))
        rate = diurnal(grid, self.config.traffic_peak_hour, self.config.diurnal_amplitude)
        mean_rate = float(np.mean((rate[1:] + rate[:-1]) / 2.0))
        return self.config.impressions_per_day * (t1 - t0) / 86_400.0 * mean_rate

    def sample_requests(
        self, t0: float, t1: float, rng: np.random.Generator, n: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Requests in [t0, t1): (sorted unix times (R,), user indices (R,)).

        R is Poisson(expected_requests) unless `n` is given; times follow the diurnal rhythm
        (thinning), users are drawn proportionally to activity.
        """
        if n is None:
            n = int(rng.poisson(self.expected_requests(t0, t1)))
        amp = self.config.diurnal_amplitude
        times = np.empty(0)
        while times.size < n:  # rejection sampling against the diurnal peak rate 1 + A
            cand = t0 + rng.random(2 * (n - times.size) + 16) * (t1 - t0)
            keep = rng.random(cand.size) * (1 + amp) < diurnal(
                cand, self.config.traffic_peak_hour, amp)
            times = np.concatenate([times, cand[keep]])
        times = np.sort(times[:n])
        return times, self.sample_users(n, rng)

    # ---- persistence ---------------------------------------------------------------------
    def save(self, dataset_dir: str | Path) -> Path:
        """Write DATASET_DIR/simulation/{world.npz, config.json}; returns the folder."""
        folder = Path(dataset_dir) / SIM_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ("." + WORLD_FILE)
        with tmp.open("wb") as fh:
            np.savez(fh, **{k: getattr(self, k) for k in self.ARRAYS})
        tmp.replace(folder / WORLD_FILE)
        (folder / CONFIG_FILE).write_text(self.config.to_json() + "\n")
        return folder

    @classmethod
    def load(cls, dataset_dir: str | Path) -> World:
        """Load a world saved by `save` (pass the dataset dir or its simulation/ folder)."""
        root = Path(dataset_dir)
        folder = root if (root / WORLD_FILE).is_file() else root / SIM_DIR
        if not (folder / WORLD_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
            raise DatasetError(f"{root} has no simulated world ({SIM_DIR}/{WORLD_FILE}); "
                               "only datasets written by 'newsdesk simulate' have one")
        manifest = folder.parent / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()).get("source") != "simulation":
            # a later import into the same directory replaced the tables, not this folder
            raise DatasetError(f"{folder} is stale: the dataset in {folder.parent} was not "
                               "written by 'newsdesk simulate'")
        config = SimulationConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
        world_cls = cls
        if config.world == "v2":  # the config says which click model wrote the log
            from newsdesk.simulation.world_v2 import WorldV2
            world_cls = WorldV2
        with np.load(folder / WORLD_FILE) as data:
            arrays = {k: data[k] for k in world_cls.ARRAYS}
        return world_cls(config, **arrays)
