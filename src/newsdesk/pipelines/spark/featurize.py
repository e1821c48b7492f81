"""The feature matrix in Spark's Python workers, with the serving code's `FeatureBuilder`.

Parity is structural, as in the local engine: Spark gathers the raw inputs (`RankingInputs`)
point-in-time and the same `FeatureBuilder.build` turns them into features. One input record
is one query (its user, time, click list and its rows with their article statistics), so a
batch of records is a set of whole queries; `mapInArrow` runs the builder over batches on the
executors and yields one output row per (query, position).

The fitted models the features need (catalog, co-click matrix, CF factors) travel as a Spark
broadcast of their saved files (the bundle formats: no pickle), unpacked once per worker
process, so this works on a cluster as on local[N].
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from newsdesk.features.ranking_features import FEATURE_NAMES, FeatureBuilder, RankingInputs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from newsdesk.models.candidates import CoClickGenerator, CollaborativeGenerator
    from newsdesk.models.catalog import ArticleCatalog

ROW_FIELDS = ("pos", "aidx", "akey", "label")
OUT_SCHEMA = ("qn long, pos long, aidx long, akey long, label double, user_id string, "
              "ts double, "
              + ", ".join(f"`{f}` float" for f in FEATURE_NAMES))


@dataclass
class ModelFiles:
    """The saved models, as {relative path: bytes}, plus what rebuilds them."""

    files: dict[str, bytes]
    builder: dict[str, Any]
    coclick: dict[str, Any]
    collaborative: dict[str, Any]
    recent_clicks: int
    token: str

    @classmethod
    def pack(cls, catalog: ArticleCatalog, co: CoClickGenerator, cf: CollaborativeGenerator,
             builder: FeatureBuilder) -> ModelFiles:
        with tempfile.TemporaryDirectory(prefix="nd-spark-models-") as tmp:
            root = Path(tmp)
            catalog.save(root / "catalog")
            co.save(root / "coclick")
            cf.save(root / "collaborative")
            if co.replay_covisits is not None:  # the training rows' online co-clicks
                co.replay_covisits.save(root / "covisit_replay")
            files = {str(p.relative_to(root)): p.read_bytes()
                     for p in sorted(root.rglob("*")) if p.is_file()}
        h = hashlib.sha256()
        for k, v in files.items():
            h.update(k.encode())
            h.update(v)
        params = builder.params()
        params.pop("serve_position", None)
        return cls(files, params,
                   {"session_gap_s": co.session_gap_s, "window": co.window, "recent": co.recent},
                   {"factors": cf.factors}, builder.recent_clicks, h.hexdigest()[:16])


_LOADED: dict[str, tuple[Any, ...]] = {}  # per worker process: token -> models


def _models(m: ModelFiles) -> tuple[Any, ...]:
    got = _LOADED.get(m.token)
    if got is not None:
        return got
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.models.candidates import CoClickGenerator, CollaborativeGenerator, Workspace
    from newsdesk.models.catalog import ArticleCatalog

    root = Path(tempfile.mkdtemp(prefix=f"nd-spark-{m.token}-"))
    for rel, data in m.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    catalog = ArticleCatalog.load(root / "catalog")
    builder = FeatureBuilder(**m.builder)
    ws = Workspace(catalog, MemoryOnlineStore(), builder, max_age_hours=None)
    co = CoClickGenerator(ws, **m.coclick).load(root / "coclick")
    cf = CollaborativeGenerator(ws, **m.collaborative).load(root / "collaborative")
    if (root / "covisit_replay").exists():
        from newsdesk.features.covisit_replay import ReplayCoVisits

        co.replay_covisits = cf.replay_covisits = ReplayCoVisits.load(root / "covisit_replay")
    _LOADED.clear()  # one model set per worker at a time
    _LOADED[m.token] = got = (catalog, builder, co, cf)
    return got


def _pad(lists: pa.ListArray, width: int, fill: float, dtype: Any) -> np.ndarray:
    """(n, width) array of variable-length lists (each <= width), padded with `fill`."""
    n = len(lists)
    out = np.full((n, width), fill, dtype=dtype)
    offsets = lists.offsets.to_numpy()
    lens = np.diff(offsets)
    values = lists.flatten().to_numpy(zero_copy_only=False)
    if len(values):
        rows = np.repeat(np.arange(n), lens)
        cols = np.arange(len(values)) - np.repeat(offsets[:-1] - offsets[0], lens)
        out[rows, cols] = values
    return out


def featurize_batch(batch: pa.RecordBatch, m: ModelFiles) -> pa.RecordBatch:
    """One batch of query records -> one batch of feature rows (see the module docstring)."""
    catalog, builder, co, cf = _models(m)
    L = m.recent_clicks
    cols = {name: batch.column(name) for name in batch.schema.names}
    rows = cols["rows"]
    lens = np.diff(rows.offsets.to_numpy())
    flat = rows.flatten()
    r = {f.name: a.to_numpy(zero_copy_only=False)
         for f, a in zip(flat.type, flat.flatten(), strict=True)}
    qn = cols["qn"].to_numpy()
    ts = cols["ts"].to_numpy()
    row_query = np.repeat(np.arange(len(qn)), lens)
    inputs = RankingInputs(
        click_idx=_pad(cols["click_idx"], L, -1, np.int64),
        click_ts=_pad(cols["click_ts"], L, np.nan, np.float64),
        user_ids=cols["user_id"].to_pylist(),
        row_query=row_query.astype(np.int64),
        row_article=r["aidx"].astype(np.int64),
        now=ts[row_query].astype(np.float64),
        position=r["pos"].astype(np.float64),
        stats=np.column_stack([r[c].astype(np.float64) for c in ("dc", "di", "cc", "ci")])
        if len(row_query) else np.zeros((0, 4)),
        exposure_idx=(_pad(cols["exposure_idx"], builder.recent_exposures, -1, np.int64)
                      if "exposure_idx" in cols else None))
    x = builder.build(inputs, catalog, coclick=co, cf=cf)
    out = {"qn": qn[row_query].astype(np.int64), "pos": r["pos"].astype(np.int64),
           "aidx": r["aidx"].astype(np.int64), "akey": r["akey"].astype(np.int64),
           "label": r["label"].astype(np.float64),
           "user_id": cols["user_id"].take(pa.array(row_query)),
           "ts": inputs.now}
    for j, f in enumerate(FEATURE_NAMES):
        out[f] = x[:, j]
    return pa.RecordBatch.from_pydict(out)


def feature_rows(spark: SparkSession, records: DataFrame, models: ModelFiles) -> DataFrame:
    """records (qn, user_id, ts, click_idx, click_ts, rows[, exposure_idx]) -> one row per
    (query, position) with the label and FEATURE_NAMES columns."""
    bc = spark.sparkContext.broadcast(models)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows:
                yield featurize_batch(b, bc.value)

    return records.mapInArrow(run, OUT_SCHEMA)
