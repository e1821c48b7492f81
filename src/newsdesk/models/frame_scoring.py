"""Scoring a DataFrame of (user, article, time) with a bundle: the notebook's entry point.

    from newsdesk.models.frame_scoring import load_bundle
    scorer = load_bundle("bundles/v20260105-...", dataset="data/sim")
    scored = scorer.score(df)            # df: user_id, article_id, time -> + "score"
    x = scorer.features(df)              # the ranker's inputs, one column per feature

Each row is scored as the served model would have scored it at `time`: the reader's recent
clicks and the article's statistics are replayed from the dataset's log strictly before
`time` (the training job's point-in-time replay, `features.replay`; the online store's
co-clicks and fold-in too, `features.covisit_replay`), then the bundle's own
`FeatureBuilder` (plug-in columns included) and ranker run. Without a dataset every reader is
new and every article unseen (an empty online store). The bundle's co-click and collaborative
models are the served ones, fitted on the whole training log: scores of rows inside that log
see its future through them, as a backtest of a served bundle would.

`time` may be a datetime column or Unix seconds; pandas and Polars frames are accepted, and
the answer is of the same kind, rows in the input order.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from newsdesk.errors import ConfigError
from newsdesk.features.covisit_replay import ReplayCoVisits
from newsdesk.features.covisitation import CoVisitParams
from newsdesk.features.replay import EventArrays, QueryRows, replay_inputs
from newsdesk.features.training_log import LogArrays, load_log
from newsdesk.models.bundle import load_recommender, offline_store, read_manifest
from newsdesk.models.pipeline import NewsRecommender

_CHUNK_QUERIES = 20_000  # (user, time) pairs per replay + build call: bounds memory


def load_bundle(bundle: str | Path, dataset: str | Path | None = None) -> BundleScorer:
    """A `BundleScorer` of the bundle directory, replaying `dataset`'s log (optional)."""
    return BundleScorer(bundle, dataset)


class BundleScorer:
    """A bundle loaded for offline scoring (see the module docstring)."""

    def __init__(self, bundle: str | Path, dataset: str | Path | None = None) -> None:
        self.bundle = Path(bundle)
        manifest = read_manifest(self.bundle)
        self.manifest = manifest
        self.feature_names: list[str] = list(manifest["feature_schema"])
        self.half_life_hours = float(manifest["config"]["features"]["half_life_hours"])
        rec = load_recommender(self.bundle, offline_store(self.bundle), ranker="lightgbm")
        assert isinstance(rec, NewsRecommender)
        self.recommender = rec
        self.bucket_seconds = 60.0 * float(
            manifest["config"]["features"].get("bucket_minutes", 60.0))
        self.log: LogArrays | None = load_log(Path(dataset)) if dataset is not None else None
        self._events = self._bundle_events() if self.log is not None else None
        if self._events is not None:  # the online co-clicks and fold-in, as of each row's time
            ev = self._events
            replay = ReplayCoVisits.fit(ev.click_user, ev.click_article, ev.click_ts,
                                        CoVisitParams(), rec.ws.catalog.size)
            for model in (rec.coclick, rec.cf):
                if model is not None:
                    model.replay_covisits = replay

    def _bundle_events(self) -> EventArrays:
        """The log's events with article indices of the bundle's catalog (the dataset may be
        another one than the bundle was trained on); statistics keys stay the log's."""
        assert self.log is not None
        ev = self.log.events
        key_ids = self.log.key_ids or [a.article_id for a in self.log.articles]
        to_cat = np.append(self.recommender.ws.catalog.lookup(key_ids), -1)  # key -1 -> -1

        def remap(keys: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
            k = fallback if keys is None else keys
            return to_cat[np.where(k >= 0, k, len(key_ids))]

        return replace(ev, click_article=remap(ev.click_key, ev.click_article),
                       hist_article=remap(ev.hist_key, ev.hist_article),
                       exp_article=remap(ev.exp_key, ev.exp_article))

    # -- public ---------------------------------------------------------------------------------
    def score(self, frame: Any, *, user_col: str = "user_id", article_col: str = "article_id",
              time_col: str = "time", out_col: str = "score") -> Any:
        """`frame` with a float64 `out_col` appended (higher = more likely clicked)."""
        df, was_pandas = _polars(frame)
        x = self._matrix(df, user_col, article_col, time_col)
        scores = self.recommender.ranker.predict(x) if len(x) else np.zeros(0)
        out = df.with_columns(pl.Series(out_col, np.asarray(scores, np.float64)))
        return out.to_pandas() if was_pandas else out

    def features(self, frame: Any, *, user_col: str = "user_id",
                 article_col: str = "article_id", time_col: str = "time") -> Any:
        """The ranker's input rows (len(frame), F) as a frame with `feature_names` columns."""
        df, was_pandas = _polars(frame)
        x = self._matrix(df, user_col, article_col, time_col)
        out = pl.DataFrame({n: x[:, j] for j, n in enumerate(self.feature_names)},
                           schema={n: pl.Float32 for n in self.feature_names})
        return out.to_pandas() if was_pandas else out

    # -- the replay -----------------------------------------------------------------------------
    def _matrix(self, df: pl.DataFrame, user_col: str, article_col: str,
                time_col: str) -> np.ndarray:
        for col in (user_col, article_col, time_col):
            if col not in df.columns:
                raise ConfigError(f"frame: column '{col}' is missing (have {df.columns})")
        users = df[user_col].cast(pl.Utf8).to_list()
        articles = df[article_col].cast(pl.Utf8).to_list()
        ts = _unix_seconds(df[time_col], time_col)
        rec = self.recommender
        n = len(users)
        x = np.zeros((n, len(self.feature_names)), np.float32)
        if n == 0:
            return x
        # queries: distinct (user, time); rows ordered by query (then input order)
        _, ucode = np.unique(np.array(users, dtype=object), return_inverse=True)
        order = np.lexsort((np.arange(n), ts, ucode))
        new_q = np.ones(n, dtype=bool)
        new_q[1:] = (ucode[order][1:] != ucode[order][:-1]) | (ts[order][1:] != ts[order][:-1])
        row_q = np.cumsum(new_q) - 1
        first = np.flatnonzero(new_q)
        q_user = [users[order[i]] for i in first]
        q_ts = ts[order[first]]
        cat = rec.ws.catalog
        row_ids = [articles[i] for i in order]
        row_art = cat.lookup(row_ids)
        events, user_code, row_key = self._codes(q_user, row_ids)
        cuts = np.append(np.searchsorted(row_q, np.arange(0, len(first), _CHUNK_QUERIES)), n)
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            q0, q1 = int(row_q[lo]), int(row_q[hi - 1]) + 1
            queries = QueryRows(
                query_user=user_code[q0:q1], query_ts=q_ts[q0:q1],
                row_query=row_q[lo:hi] - q0, row_article=row_art[lo:hi],
                row_position=np.full(hi - lo, rec.ws.builder.serve_position),
                row_key=row_key[lo:hi])
            inputs = replay_inputs(events, queries, cat.size,
                                   half_life_hours=self.half_life_hours,
                                   recent_clicks=rec.ws.builder.recent_clicks,
                                   bucket_seconds=self.bucket_seconds,
                                   recent_exposures=rec.ws.builder.exposures_read)
            x[order[lo:hi]] = rec.ws.builder.build(inputs, cat, coclick=rec.coclick,
                                                   cf=rec.cf)
        return x

    def _codes(self, q_user: list[str], row_ids: list[str]
               ) -> tuple[EventArrays, np.ndarray, np.ndarray]:
        """(events, user code per query, statistics key per row): readers and articles the
        log never saw get codes / keys no event carries (no history, zero statistics)."""
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
        events = self._events if self._events is not None else EventArrays(
            user_ids=[], click_user=empty_i, click_article=empty_i, click_ts=empty_f,
            exp_article=empty_i, exp_ts=empty_f, hist_user=empty_i, hist_article=empty_i,
            hist_ts=empty_f, click_key=empty_i, exp_key=empty_i, hist_key=empty_i, n_keys=0,
            exp_user=empty_i)
        codes = {u: i for i, u in enumerate(events.user_ids)}
        new_users = sorted(set(q_user) - codes.keys())
        if new_users:  # ids the CF factors may still know; codes without events
            codes.update({u: len(events.user_ids) + j for j, u in enumerate(new_users)})
            events = replace(events, user_ids=events.user_ids + new_users)
        user_code = np.array([codes[u] for u in q_user], np.int64)
        key_ids = [] if self.log is None else (
            self.log.key_ids or [a.article_id for a in self.log.articles])
        keys = {a: i for i, a in enumerate(key_ids)}
        row_key = np.array([keys.get(a, -1) for a in row_ids], np.int64)
        return events, user_code, row_key


def _polars(frame: Any) -> tuple[pl.DataFrame, bool]:
    if isinstance(frame, pl.DataFrame):
        return frame, False
    if type(frame).__module__.startswith("pandas"):
        return pl.from_pandas(frame), True
    raise ConfigError(f"frame: expected a Polars or pandas DataFrame, got {type(frame).__name__}")


def _unix_seconds(col: pl.Series, name: str) -> np.ndarray:
    if col.dtype == pl.Datetime or isinstance(col.dtype, pl.Datetime):
        return col.dt.epoch("us").cast(pl.Float64).to_numpy() / 1e6
    if col.dtype.is_numeric():
        return col.cast(pl.Float64).to_numpy()
    raise ConfigError(f"frame: column '{name}' must be a datetime or Unix seconds, "
                      f"got {col.dtype}")
