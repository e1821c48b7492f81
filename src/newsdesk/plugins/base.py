"""The three plug points another package can fill: candidate generators, ranking features and
rankers. The docstrings of these classes are the contract; `docs/plugins.md` is the guide.

A plug-in class is found by its entry point name in the group of its role
(`newsdesk.candidates`, `newsdesk.features`, `newsdesk.rankers`; `plugins.registry`), named in
the train config (`plugins:` list, `plugins.config`), fitted by `newsdesk train`, saved in the
bundle (`plugins/<name>/`, its own files; the manifest names the distribution and version) and
loaded by `load_recommender`, so `newsdesk serve` serves it unchanged.

Life cycle (scikit-learn's): `__init__(**params)` only stores the config's `params` (they are
JSON and go into the manifest); `fit(ctx)` learns from the training log and returns self;
`save(directory)` writes what was learned into an empty directory of the bundle; a served copy
is `cls(**params).load(directory, ws)`. One class may fill both the candidate and the feature
role (it is then fitted, saved and loaded once).

Train/serve parity: a feature plug-in's `compute` is called by the same `FeatureBuilder.build`
call in training (log replay) and in serving (the online store); it must be a pure function of
its inputs and what `fit` learned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from newsdesk.features.ranking_features import RankingInputs

if TYPE_CHECKING:  # the training log and workspace types, without importing them at start
    from typing import Self

    from newsdesk.features.ranking_features import CatalogArrays
    from newsdesk.features.training_log import LogArrays
    from newsdesk.models.candidates.base import UserView, Workspace


@dataclass
class FitContext:
    """What a plug-in learns from: the training log, seen only before `until`.

    ws          the workspace of the bundle being trained: `ws.catalog` (articles, embeddings
                (N, dim) float32, categories), `ws.builder` (the feature parameters, e.g.
                `recent_clicks`); its online store is empty during training
    log         the dataset as arrays (`features.training_log.LogArrays`); catalog indices of
                `log.events` are `ws.catalog` indices
    until       Unix s: use only events strictly before it (None: every event). Training fits
                feature plug-ins twice: before the ranker's period (so the ranker learns from
                out-of-sample values) and on everything for serving
    seed        the train config's seed: every random choice must derive from it
    """

    ws: Workspace
    log: LogArrays
    until: float | None
    seed: int

    def clicks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user codes, catalog indices (-1: not in the catalog), Unix s) of the reading
        histories and the clicks before `until`; user codes index `log.events.user_ids`."""
        ev = self.log.events
        keep = (np.ones(len(ev.click_ts), bool) if self.until is None
                else ev.click_ts < self.until)
        return (np.concatenate([ev.hist_user, ev.click_user[keep]]),
                np.concatenate([ev.hist_article, ev.click_article[keep]]),
                np.concatenate([ev.hist_ts, ev.click_ts[keep]]))

    def impressions(self, max_impressions: int, *, recent_clicks: int | None = None,
                    since: float | None = None
                    ) -> tuple[RankingInputs, np.ndarray, np.ndarray]:
        """Logged impressions in [since, until) with a click and a non-click, at most
        `max_impressions` (a seeded uniform sample), each with the reader's point-in-time
        history: (inputs, labels (R,) 0/1, groups (Q,) rows per impression, rows grouped).
        `inputs.click_idx` (Q, recent_clicks) are the reader's clicks before the impression,
        newest first (-1 padding); `inputs.row_article` the shown articles. The same replay
        the ranker's training set comes from."""
        from newsdesk.features.replay import replay_inputs
        from newsdesk.features.training_log import ranker_queries

        lo = -np.inf if since is None else since
        hi = np.inf if self.until is None else self.until
        rng = np.random.default_rng(self.seed)
        q = ranker_queries(self.log, lo, hi, max_impressions, rng)
        n = self.ws.builder.recent_clicks if recent_clicks is None else recent_clicks
        inputs = replay_inputs(self.log.events, q.rows, self.ws.catalog.size,
                               half_life_hours=self.ws.store.half_life_hours,
                               recent_clicks=n, bucket_seconds=3600.0)
        return inputs, q.labels, q.groups


class TrainablePlugin(ABC):
    """What candidate and feature plug-ins share (see the module docstring)."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, ctx: FitContext) -> Self:
        """Learn from `ctx` (events before ctx.until only); return self."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write what `fit` learned into `directory` (exists, empty, inside the bundle; every
        file is hashed into the manifest). Prefer .npy / JSON: bundles hold no pickle."""

    @abstractmethod
    def load(self, directory: Path, ws: Workspace) -> Self:
        """Read what `save` wrote (on `cls(**params)`), bind to the serving workspace `ws`
        (catalog, online store), return self. Raise ValueError / OSError / KeyError on
        unreadable files: the loader turns them into a BundleError naming the plug-in."""


class CandidatePlugin(TrainablePlugin):
    """A candidate generator. Its name in the pipeline is its config name; `quota` (config)
    is how many it proposes per request."""

    @abstractmethod
    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to n live candidates for one reader at view.now, best first: (catalog indices
        int64 (k,), taken from `view.live`, scores float64 (k,)). Read the reader from the
        view (`click_idx`, `profile`, `affinity`, `memo` for per-request values), never from
        the store: the request reads it once. Runs on the request path: keep it under a
        millisecond, and thread-safe (no writes to shared state without a lock)."""

    def reason(self, view: UserView, i: int) -> str:
        """A short human explanation of why article i was proposed ("" for none)."""
        return ""


class FeaturePlugin(TrainablePlugin):
    """Ranking features appended after newsdesk's own columns (`FEATURE_NAMES`)."""

    @property
    @abstractmethod
    def feature_names(self) -> tuple[str, ...]:
        """Column names (letters, digits, underscores; distinct from newsdesk's own and from
        every other plug-in's); fixed after __init__ (they are the bundle's schema)."""

    @abstractmethod
    def compute(self, inputs: RankingInputs, catalog: CatalogArrays,
                article_embeddings: np.ndarray | None = None) -> np.ndarray:
        """Columns (R, len(feature_names)) float32 for every row of `inputs` (see
        `RankingInputs`: Q readers with their recent clicks, R rows of (reader, article, time,
        position, statistics); row_article -1 = outside the catalog). NaN is allowed (the
        ranker routes missing values). `article_embeddings`: catalog.embeddings of each row's
        article (R, dim) when the caller gathered them already. Serving calls it with Q = 1
        and a few hundred rows: keep that under a fraction of a millisecond."""


class RankerPlugin(ABC):
    """The model that orders the candidates, fitted on the feature matrix."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray,
            valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
            feature_names: Sequence[str], seed: int) -> Self:
        """x (R, F) float32 (NaN = missing), y (R,) 0/1 clicks, groups (Q,) rows per
        impression (rows grouped); `valid` the same for the held-out period (None when
        empty); return self."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores (R,) float64, higher = better; (0,) for no rows. Thread-safe."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the fitted model into `directory` (exists, empty, inside the bundle)."""

    @abstractmethod
    def load(self, directory: Path, feature_names: Sequence[str]) -> Self:
        """Read what `save` wrote (on `cls(**params)`); return self."""


ROLE_CLASSES: dict[str, type] = {"candidates": CandidatePlugin, "features": FeaturePlugin,
                                 "rankers": RankerPlugin}
