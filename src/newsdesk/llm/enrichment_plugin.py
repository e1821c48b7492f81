"""LLM enrichment as ranking features: a feature plug-in, off unless a train config names it.

    enrichment table (PATH/enrichment/, `newsdesk enrich` or the upsert queue)
        └─ fit / load ─> EnrichmentTerms over the enriched articles (llm/features.py)
    FeatureBuilder.build (training replay and serving, one call: plugins/features.py)
        └─ compute ─> enrich_overlap, enrich_has, enrich_breaking   (R, 3)

Why a plug-in rather than more `FEATURE_NAMES`: enrichment is optional (it needs a model run
over the catalog), and the plug-in path already gives what an optional column group needs: the
train config names it, the bundle records it (schema and files), `load_recommender` serves it
with the same `build` call training used, and bundles without it are untouched.

    plugins:
      - name: llm_enrichment
        roles: [features]
        params: {path: /data/news}      # the directory holding the enrichment/ table

Columns (NaN where unknown; the ranker routes missing values):
    enrich_overlap   cosine of the candidate's enrichment terms (entities, keywords, topics)
                     with those of the reader's recent clicks; NaN when the candidate has no
                     enrichment, 0 when it has but the reader's clicks have none
    enrich_has       1 when the candidate has an enrichment, else 0
    enrich_breaking  1 "breaking", 0 "evergreen", NaN without enrichment

Articles enriched after training (the upsert queue writes the same table in the serving
state dir) are picked up when `refresh_s` > 0: at most every `refresh_s` seconds `compute`
checks the table's part files and rebuilds the terms when they changed. Enrichment depends on
an article's text only, never on events, so fitting on every enriched article leaks nothing
from the ranker's period.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from newsdesk.features.ranking_features import CatalogArrays, RankingInputs
from newsdesk.llm.features import EnrichmentTerms
from newsdesk.plugins.base import FeaturePlugin, FitContext

if TYPE_CHECKING:
    from typing import Self

    from newsdesk.models.candidates.base import Workspace

COLUMNS = ("enrich_overlap", "enrich_has", "enrich_breaking")


class EnrichmentFeatures(FeaturePlugin):
    """Enrichment overlap features (see the module docstring). Params: `path` (str, the
    directory holding the `enrichment/` table), `refresh_s` (float, 0 = never re-read)."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        path = params.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError(f"llm_enrichment: params.path must be the directory holding the "
                             f"enrichment/ table, got {path!r}")
        refresh = params.get("refresh_s", 60.0)
        if not isinstance(refresh, int | float) or refresh < 0:
            raise ValueError(f"llm_enrichment: params.refresh_s must be a number >= 0, got "
                             f"{refresh!r}")
        self.path = Path(path)
        self.refresh_s = float(refresh)
        self._lock = threading.Lock()
        self._set_terms([], EnrichmentTerms.build([], _empty_table()), np.zeros(0))
        self._parts_seen: tuple[tuple[str, float], ...] = ()
        self._checked = 0.0

    @property
    def feature_names(self) -> tuple[str, ...]:
        return COLUMNS

    # -- the enriched articles ----------------------------------------------------------------
    def _set_terms(self, ids: list[str], terms: EnrichmentTerms, breaking: np.ndarray) -> None:
        # one tuple, swapped at once: a concurrent compute sees the old or the new set, whole
        self._state = (ids, {a: i for i, a in enumerate(ids)}, terms, breaking,
                       np.zeros(0, dtype=np.int64))

    def _parts(self) -> tuple[tuple[str, float], ...]:
        from newsdesk.llm.enrichment_store import EnrichmentStore

        out = []
        for p in EnrichmentStore(self.path).parts():
            try:
                out.append((p.name, p.stat().st_mtime))
            except OSError:  # compacted away between listing and stat
                continue
        return tuple(out)

    def _read_table(self) -> None:
        from newsdesk.llm.enrichment_store import EnrichmentStore

        parts = self._parts()
        table = EnrichmentStore(self.path).read()
        ids = table["article_id"].to_list()
        breaking = np.array([np.nan if t is None else float(t == "breaking")
                             for t in table["timeliness"].to_list()], dtype=np.float32)
        self._set_terms(ids, EnrichmentTerms.build(ids, table), breaking)
        self._parts_seen = parts

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if self.refresh_s <= 0 or now - self._checked < self.refresh_s:
            return
        if not self._lock.acquire(blocking=False):  # another request is refreshing
            return
        try:
            self._checked = now
            if self._parts() != self._parts_seen:
                self._read_table()
        finally:
            self._lock.release()

    # -- life cycle -----------------------------------------------------------------------------
    def fit(self, ctx: FitContext) -> Self:
        self._read_table()
        return self

    def save(self, directory: Path) -> None:
        ids, _, terms, breaking, _ = self._state
        sp.save_npz(directory / "terms.npz", terms.matrix.tocsr(), compressed=True)
        np.save(directory / "breaking.npy", breaking, allow_pickle=False)
        (directory / "ids.json").write_text(json.dumps(ids))

    def load(self, directory: Path, ws: Workspace) -> Self:
        ids = json.loads((directory / "ids.json").read_text())
        matrix = sp.load_npz(directory / "terms.npz").tocsr()
        breaking = np.load(directory / "breaking.npy", allow_pickle=False)
        if matrix.shape[0] != len(ids) or len(breaking) != len(ids):
            raise ValueError(f"llm_enrichment: {directory} holds {matrix.shape[0]} term rows, "
                             f"{len(breaking)} labels and {len(ids)} ids")
        self._set_terms(ids, EnrichmentTerms(matrix, {}), breaking)
        self._checked = time.monotonic()
        # the table may have grown since training (the upsert queue): take the newer one
        if self.refresh_s > 0 and self.path.is_dir():
            self._read_table()
        return self

    # -- the columns ----------------------------------------------------------------------------
    def _rows_of(self, catalog: CatalogArrays) -> np.ndarray:
        """Term row of every catalog index (-1: not enriched), extended as the catalog grows."""
        state = self._state
        ids, index, _, _, rows = state
        catalog_ids: list[str] = getattr(catalog, "ids", [])
        n = len(catalog_ids)
        if len(rows) < n:
            rows = np.concatenate([rows, np.fromiter(
                (index.get(a, -1) for a in catalog_ids[len(rows):n]), dtype=np.int64,
                count=n - len(rows))])
            if self._state is state:  # not swapped meanwhile: keep the longer map
                self._state = (*state[:4], rows)
        return rows

    def compute(self, inputs: RankingInputs, catalog: CatalogArrays,
                article_embeddings: np.ndarray | None = None) -> np.ndarray:
        self._maybe_refresh()
        _, _, terms, breaking, _ = self._state
        rows = self._rows_of(catalog)
        out = np.full((len(inputs.row_article), len(COLUMNS)), np.nan, dtype=np.float32)
        if len(rows) == 0 or len(inputs.row_article) == 0:
            out[:, 1] = 0.0
            return out

        def term_row(idx: np.ndarray) -> np.ndarray:
            ok = (idx >= 0) & (idx < len(rows))
            return np.where(ok, rows[np.where(ok, idx, 0)], -1)

        cand = term_row(inputs.row_article)
        clicks = term_row(inputs.click_idx)
        has = cand >= 0
        if len(terms.matrix.indptr) > 1:
            has &= terms.has_enrichment[np.maximum(cand, 0)]
        out[:, 1] = has
        if has.any():
            overlap = terms.overlap(clicks, inputs.row_query, np.where(has, cand, -1))
            out[has, 0] = overlap[has]
            out[has, 2] = breaking[cand[has]]
        return out


def _empty_table() -> pl.DataFrame:
    return pl.DataFrame({"article_id": [], "entities": [], "keywords": [], "topics": []},
                        schema={"article_id": pl.String, "entities": pl.List(pl.String),
                                "keywords": pl.List(pl.String), "topics": pl.List(pl.String)})
