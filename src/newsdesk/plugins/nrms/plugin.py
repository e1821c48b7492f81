"""`nrms`: the NRMS-style neural user model as a candidate generator and a ranking feature.

Registered like any plug-in (newsdesk's pyproject: entry point `nrms` in `newsdesk.candidates`
and `newsdesk.features`); train config:

    plugins:
      - name: nrms
        roles: [candidates, features]
        quota: 60
        params: {epochs: 3, dim: 64}

Training (torch, CPU, `train_torch`) learns from the logged impressions before `ctx.until`;
the bundle holds `weights.npz` (plain arrays) and serving runs `encoder.NRMSWeights` in numpy.
Per request the reader is encoded once (cached per thread on the click list, which the
generator and the feature share), then
  * candidates: the live articles by u . (E_i P), from the live set's projected embeddings
    (kept per live set: (live, d) floats, d = 64 by default), exact;
  * feature `nrms_score`: E_i . (P u) per row (NaN for a reader without clicks or an article
    outside the catalog).
`benchmarks/nrms_cost.py` measures the request-path cost.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from newsdesk.errors import DatasetError
from newsdesk.features.ranking_features import CatalogArrays, RankingInputs
from newsdesk.plugins.base import CandidatePlugin, FeaturePlugin, FitContext
from newsdesk.plugins.nrms.encoder import NRMSWeights

if TYPE_CHECKING:
    from newsdesk.models.candidates.base import UserView, Workspace

TRAINING_FILE = "training.json"


class NRMSPlugin(CandidatePlugin, FeaturePlugin):
    """See the module docstring. Parameters: encoder size (`dim`, `heads`, `attention_dim`),
    the clicks a reader is encoded from (`history`, newest first), negatives per click
    (`negatives`), and the training budget (`epochs`, `batch_size`, `learning_rate`,
    `dropout`, `max_impressions` sampled from the log, `max_seconds`)."""

    feature_names = ("nrms_score",)

    def __init__(self, *, dim: int = 64, heads: int = 4, attention_dim: int = 64,
                 history: int = 30, negatives: int = 4, epochs: int = 3,
                 batch_size: int = 128, learning_rate: float = 1e-3, dropout: float = 0.2,
                 max_impressions: int = 30_000, max_seconds: float = 120.0) -> None:
        if dim < 1 or heads < 1 or dim % heads:
            raise ValueError(f"dim must be a positive multiple of heads, got dim={dim}, "
                             f"heads={heads}")
        if history < 1 or negatives < 1 or epochs < 1:
            raise ValueError(f"history, negatives and epochs must be >= 1, got {history}, "
                             f"{negatives}, {epochs}")
        super().__init__(dim=dim, heads=heads, attention_dim=attention_dim, history=history,
                         negatives=negatives, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, dropout=dropout,
                         max_impressions=max_impressions, max_seconds=max_seconds)
        self.dim, self.heads, self.attention_dim = dim, heads, attention_dim
        self.history, self.negatives, self.epochs = history, negatives, epochs
        self.batch_size, self.learning_rate, self.dropout = batch_size, learning_rate, dropout
        self.max_impressions, self.max_seconds = max_impressions, max_seconds
        self._local = threading.local()

    # -- training -----------------------------------------------------------------------------
    def fit(self, ctx: FitContext) -> NRMSPlugin:
        from newsdesk.plugins.nrms.train_torch import build_samples, train_encoder

        inputs, labels, groups = ctx.impressions(self.max_impressions,
                                                 recent_clicks=self.history)
        rng = np.random.default_rng(ctx.seed)
        samples = build_samples(inputs.click_idx, inputs.row_article, labels, groups,
                                self.negatives, rng)
        if len(samples.history) == 0:
            raise DatasetError("plug-in 'nrms': no logged click by a reader with an earlier "
                               "click before the training cut; nothing to learn from")
        cat = ctx.ws.catalog
        self.weights_, self.training_ = train_encoder(
            cat.embeddings[: cat.size], samples, dim=self.dim, heads=self.heads,
            attention_dim=self.attention_dim, epochs=self.epochs, batch_size=self.batch_size,
            learning_rate=self.learning_rate, dropout=self.dropout, seed=ctx.seed,
            max_seconds=self.max_seconds)
        self.training_["impressions"] = float(len(groups))
        return self

    def save(self, directory: Path) -> None:
        self.weights_.save(directory)
        (directory / TRAINING_FILE).write_text(json.dumps(self.training_, indent=2))

    def load(self, directory: Path, ws: Workspace) -> NRMSPlugin:
        self.weights_ = NRMSWeights.load(directory)
        if self.weights_.dim != ws.catalog.dim:
            raise ValueError(f"weights expect {self.weights_.dim}-dim embeddings, the "
                             f"catalog has {ws.catalog.dim}")
        self.ws = ws
        return self

    # -- the reader ---------------------------------------------------------------------------
    def reader(self, embeddings: np.ndarray, clicks: np.ndarray, version: object = None
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """(u (d,), P u (dim,)) of one reader's clicks (newest first, -1 pad); None without
        a click. The last answer is kept per thread: the generator and the feature of one
        request ask with the same clicks. `version`: the catalog's change counter (an
        upsert may re-embed a clicked article in place)."""
        clicks = clicks[: self.history]
        key = (clicks.tobytes(), version)
        last = getattr(self._local, "last", None)
        if last is not None and last[0] == key and last[1] is embeddings:
            return last[2]
        valid = clicks >= 0
        out = None
        if valid.any():
            w = self.weights_
            u = w.encode_one(embeddings[clicks[valid]])
            out = (u, w.proj @ u)
        self._local.last = (key, embeddings, out)
        return out

    # -- CandidatePlugin ----------------------------------------------------------------------
    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        live = view.live
        cat = self.ws.catalog
        r = self.reader(cat.embeddings, view.click_idx, cat.version) if n > 0 else None
        if r is None or len(live) == 0:
            return live[:0], np.zeros(0)
        from newsdesk.models.candidates.base import top_n

        proj = self.weights_.proj
        emb = self.ws.live_embeddings(live)  # outside: the live set's memo lock is not reentrant
        projected = self.ws.derived(live, "nrms_projection", lambda ix: emb @ proj)
        return top_n(live, (projected @ r[0]).astype(np.float64), n)

    def reason(self, view: UserView, i: int) -> str:
        from newsdesk.models.candidates.base import because_you_read

        return because_you_read(self.ws, view, i)

    # -- FeaturePlugin ------------------------------------------------------------------------
    def compute(self, inputs: RankingInputs, catalog: CatalogArrays,
                article_embeddings: np.ndarray | None = None) -> np.ndarray:
        a = inputs.row_article
        known = a >= 0
        emb_a = (catalog.embeddings[np.where(known, a, 0)] if article_embeddings is None
                 else article_embeddings)
        out = np.full((len(a), 1), np.nan, dtype=np.float32)
        if len(inputs.click_idx) == 1:  # one reader (serving)
            r = self.reader(catalog.embeddings, inputs.click_idx[0],
                            getattr(catalog, "version", None))
            if r is not None:
                out[:, 0] = np.where(known, emb_a @ r[1], np.nan)
            return out
        clicks = inputs.click_idx[:, : self.history]
        queries = self.weights_.reader_queries(catalog.embeddings, clicks)  # (Q, dim)
        has = np.asarray((clicks >= 0).any(axis=1))[inputs.row_query]
        sims = np.einsum("rd,rd->r", emb_a, queries[inputs.row_query])
        out[:, 0] = np.where(known & has, sims, np.nan)
        return out

    def describe(self) -> dict[str, Any]:
        return {"params": self.params, "training": getattr(self, "training_", None)}
