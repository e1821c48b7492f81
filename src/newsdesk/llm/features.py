"""Ranking features from enrichment: how much a candidate shares with what the reader clicked.

    enrichment table (article id -> topics, keywords, entities)
        └─> EnrichmentTerms: a sparse binary matrix (catalog index x term), rows L2-normalised
    reader: recent clicks as catalog indices (Q, L), -1 = padding   ┐
    rows:   (query, candidate catalog index) (R,)                   ┴─> overlap (R,) in [0, 1]

`overlap` is the cosine between the candidate's term set and the sum of the clicked articles'
term sets: 0 when the candidate or the history has no enrichment (unknown, not "dissimilar";
the ranker sees `has_enrichment` too). Terms are lower-cased and prefixed by kind
(`e:bayern munich`, `k:transfer`, `t:football`) so an entity and a keyword of the same spelling
stay apart. The arrays follow `features.ranking_features.RankingInputs`, so this is one more
column for `FeatureBuilder` once the ranker is trained with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp

KINDS = (("entities", "e"), ("keywords", "k"), ("topics", "t"))


class EnrichmentTerms:
    """Term sets of the catalog's enriched articles (see the module docstring)."""

    def __init__(self, matrix: sp.csr_matrix, vocabulary: dict[str, int]) -> None:
        self.matrix = matrix
        self.vocabulary = vocabulary
        self.has_enrichment = np.asarray(matrix.getnnz(axis=1) > 0)

    @classmethod
    def build(cls, article_ids: Sequence[str], enrichment: pl.DataFrame) -> EnrichmentTerms:
        """Rows in the order of `article_ids` (the catalog index); articles without
        enrichment get an empty row."""
        index = {a: i for i, a in enumerate(article_ids)}
        vocabulary: dict[str, int] = {}
        rows, cols = [], []
        columns = ["article_id", *[k for k, _ in KINDS]]
        for record in enrichment.select(columns).iter_rows(named=True):
            i = index.get(record["article_id"])
            if i is None:
                continue
            terms = {f"{p}:{str(v).strip().lower()}" for k, p in KINDS for v in record[k] or []
                     if str(v).strip()}
            for term in terms:
                rows.append(i)
                cols.append(vocabulary.setdefault(term, len(vocabulary)))
        matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(len(article_ids), max(1, len(vocabulary))))
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        matrix = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
                          ) @ matrix
        return cls(matrix.tocsr(), vocabulary)

    def _overlap_one(self, clicks: np.ndarray, row_article: np.ndarray) -> np.ndarray:
        out = np.zeros(len(row_article), dtype=np.float32)
        clicks = clicks[clicks >= 0]
        known = row_article >= 0
        if len(clicks) == 0 or not known.any():
            return out
        history = np.asarray(self.matrix[clicks].sum(axis=0), dtype=np.float32).ravel()
        norm = float(np.sqrt(history @ history))
        if norm == 0.0:
            return out
        out[known] = self.matrix[row_article[known]] @ (history / norm)
        return out

    def overlap(self, click_idx: np.ndarray, row_query: np.ndarray,
                row_article: np.ndarray) -> np.ndarray:
        """Cosine of each row's candidate terms with its reader's clicked terms, (R,)."""
        n_queries = click_idx.shape[0]
        if n_queries == 1:  # one reader (serving): one dense history vector, one product
            return self._overlap_one(click_idx[0], row_article)
        valid = click_idx >= 0
        q, pos = np.nonzero(valid)
        history = sp.csr_matrix((np.ones(len(q), dtype=np.float32), (q, click_idx[q, pos])),
                                shape=(n_queries, self.matrix.shape[0])) @ self.matrix
        norms = np.sqrt(np.asarray(history.multiply(history).sum(axis=1)).ravel())
        history = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
                           ) @ history
        out = np.zeros(len(row_query), dtype=np.float32)
        known = row_article >= 0
        if known.any():
            cand = self.matrix[row_article[known]]
            hist = history.tocsr()[row_query[known]]
            out[known] = np.asarray(cand.multiply(hist).sum(axis=1)).ravel()
        return out
