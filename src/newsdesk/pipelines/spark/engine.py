"""The Spark engine of `train`: the data steps on Spark, the ranker on the driver.

    dataset dir ──> load_spark_log (coded DataFrames, labels)        tables.py
                      ├─> co-click counts, ALS (before the cut)      generators.py
                      ├─> query selection (+ seeded subsample)       here
                      ├─> user click lists, article statistics        pointintime.py
                      └─> FeatureBuilder in Python workers            featurize.py
                                 └─> (X, labels, groups) on the driver ──> LightGBM (train.py)

The result is the local engine's (`train.local_training_data`), row for row: the same
queries in the same order (the subsample draws the same positions from the same seeded
generator over the same ordered candidates), the same point-in-time inputs, the same
`FeatureBuilder`. Only the ranker's (bounded) sets come to the driver; the log never does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from newsdesk.content.embedder import Embedder
from newsdesk.errors import DatasetError
from newsdesk.features.covisit_replay import ReplayCoVisits
from newsdesk.features.covisitation import CoVisitParams
from newsdesk.features.ranking_features import FEATURE_NAMES
from newsdesk.models.catalog import ArticleCatalog
from newsdesk.pipelines.spark.featurize import ModelFiles, feature_rows
from newsdesk.pipelines.spark.generators import (
    coclick_generator,
    collaborative_generator,
    fit_clicks,
)
from newsdesk.pipelines.spark.pointintime import (
    article_statistics,
    user_click_lists,
    user_exposure_lists,
)
from newsdesk.pipelines.spark.session import SparkSettings, spark_session
from newsdesk.pipelines.spark.tables import SparkLog, load_spark_log

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from newsdesk.pipelines.train import TrainConfig, TrainingData

POS_BITS = 20  # row id = query number << 20 | position (slates are far shorter than 1M)


def select_queries(spark: SparkSession, log: SparkLog,
                   windows: list[tuple[float, float, int]], rng: np.random.Generator
                   ) -> tuple[DataFrame, list[int]]:
    """(qn, iord) of the impressions of each window (lo <= ts < hi) having a click and a
    non-click, numbered 0.. across the windows in order and, within one, in the local
    engine's query order (time, then scan order); at most `cap` per window (a uniform sample
    drawn like `ranker_queries`: the same generator draws the same positions). Returns the
    selection and the number of queries per window. One pass over the exposures."""
    from pyspark.sql import functions as F

    win = F.lit(None).cast("int")
    for i, (lo, hi, _cap) in reversed(list(enumerate(windows))):
        win = F.when((F.col("ts") >= F.lit(lo)) & (F.col("ts") < F.lit(hi)), F.lit(i)
                     ).otherwise(win)
    per = (log.exposures.withColumn("win", win).filter(F.col("win").isNotNull())
           .groupBy("iord").agg(F.sum("label").alias("c"), F.count(F.lit(1)).alias("n"),
                                F.first("us").alias("us"), F.first("win").alias("win"))
           .filter((F.col("c") > 0) & (F.col("c") < F.col("n"))).select("us", "iord", "win"))
    t = per.toArrow()  # two longs per eligible impression: small next to the log
    us, iord, w = (t.column(c).to_numpy() for c in ("us", "iord", "win"))
    picked, counts = [], []
    for i, (_lo, _hi, cap) in enumerate(windows):
        mine = np.flatnonzero(w == i)
        order = mine[np.lexsort((iord[mine], us[mine]))]
        if len(order) > cap:
            order = order[np.sort(rng.choice(len(order), size=cap, replace=False))]
        picked.append(iord[order])
        counts.append(len(order))
    sel = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    df = pa.table({"qn": np.arange(len(sel), dtype=np.int64), "iord": sel.astype(np.int64)})
    return spark.createDataFrame(df.to_pandas(), schema="qn long, iord long"), counts


def assemble(spark: SparkSession, log: SparkLog, selected: DataFrame, models: ModelFiles, *,
             half_life_hours: float, recent_clicks: int, recent_exposures: int = 0
             ) -> DataFrame:
    """The feature rows (qn, pos, aidx, akey, label, FEATURE_NAMES...) of the selected
    queries, point-in-time (see `pointintime`)."""
    from pyspark.sql import functions as F

    rows = (log.exposures.join(selected, on="iord")
            .select("qn", "pos", "aidx", "akey", "label", "us", "user_id", "ts")
            .withColumn("rid", F.col("qn") * F.lit(1 << POS_BITS) + F.col("pos")))
    rows = rows.persist()
    queries = rows.groupBy("qn").agg(F.first("user_id").alias("user_id"),
                                     F.first("us").alias("us"), F.first("ts").alias("ts"))
    stats = article_statistics(log, rows.select("rid", "akey", "us"),
                               half_life_hours=half_life_hours)
    per_query = (rows.join(stats, on="rid")
                 .groupBy("qn").agg(F.array_sort(F.collect_list(F.struct(
                     "pos", "aidx", "akey", F.col("label").cast("double").alias("label"),
                     "dc", "di", "cc", "ci"))).alias("rows")))
    clicks = user_click_lists(log, queries, recent_clicks)
    records = queries.join(per_query, on="qn").join(clicks, on="qn")
    columns = ["qn", "user_id", "ts", "click_idx", "click_ts", "rows"]
    if recent_exposures > 0:  # the story_exposures feature reads the readers' exposures
        records = records.join(user_exposure_lists(log, queries, recent_exposures), on="qn")
        columns.append("exposure_idx")
    return feature_rows(spark, records.select(*columns), models)


def collect_set(rows: DataFrame) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray],
                                          dict[str, Any]]:
    """((X, labels, groups), row identities) on the driver, rows in (query, position) order."""
    t = rows.toArrow()
    qn = t.column("qn").to_numpy()
    pos = t.column("pos").to_numpy()
    order = np.lexsort((pos, qn))
    x = np.empty((len(order), len(FEATURE_NAMES)), np.float32)
    for j, f in enumerate(FEATURE_NAMES):
        x[:, j] = t.column(f).to_numpy()[order]
    labels = t.column("label").to_numpy()[order].astype(np.float64)
    qn = qn[order]
    groups = np.bincount(qn, minlength=int(qn.max()) + 1 if len(qn) else 0).astype(np.int64)
    first = np.flatnonzero(np.r_[True, qn[1:] != qn[:-1]]) if len(qn) else qn
    ident = {"row_position": pos[order].astype(np.float64),
             "row_key": t.column("akey").to_numpy()[order].astype(np.int64),
             "query_user": t.column("user_id").take(pa.array(order[first])).to_pylist(),
             "query_ts": t.column("ts").to_numpy()[order][first]}
    return (x, labels, groups), ident


def replay_covisits(log: Any, n_articles: int) -> ReplayCoVisits:
    """`ReplayCoVisits` of the logged clicks, fitted on the driver (as the ALS is): the
    clicks in the local engine's order (time, then log order)."""
    t = log.clicks.select("user_id", "aidx", "ts", "us", "ord").orderBy("us", "ord").toArrow()
    _, user = np.unique(np.asarray(t.column("user_id").to_pylist(), dtype=object),
                        return_inverse=True)
    return ReplayCoVisits.fit(user.ravel(), t.column("aidx").to_numpy(),
                              t.column("ts").to_numpy(), CoVisitParams(), n_articles)


def build_catalog(articles: list[Any], embedder: Embedder) -> ArticleCatalog:
    """As train.build_catalog: every dataset article, in dataset order."""
    catalog = ArticleCatalog(embedder.dim, capacity=max(16, 2 * len(articles)))
    for lo in range(0, len(articles), 4096):
        catalog.upsert(articles[lo:lo + 4096], embedder)
    return catalog


def spark_training_data(dataset_dir: Path, cfg: TrainConfig, embedder: Embedder,
                        lap: Callable[[str], None] = lambda name: None,
                        spark: SparkSession | None = None) -> TrainingData:
    """`train.local_training_data`, on Spark (see the module docstring)."""
    from newsdesk.pipelines.train import TrainingData, _builder_and_workspace, split_times

    if spark is None:
        spark = spark_session(SparkSettings.build(master=cfg.spark.master,
                                                  driver_memory=cfg.spark.driver_memory))
    log = load_spark_log(spark, Path(dataset_dir))
    n_exposures = log.exposures.count()
    log.counts["exposures"] = n_exposures
    lap("load")
    catalog = build_catalog(log.articles, embedder)
    lap("embed")
    f = cfg.features
    builder, ws = _builder_and_workspace(cfg, catalog, log.counts["clicks"], n_exposures)
    gen_cut, valid_cut = split_times(cfg, log.time_range)
    g = cfg.generators

    def fit(until: float | None) -> tuple[Any, Any]:
        clicks = fit_clicks(log, until).persist()
        co = coclick_generator(ws, clicks, catalog.size, g.coclick)
        cf = collaborative_generator(ws, clicks, catalog.size, g.collaborative, seed=cfg.seed,
                                     als=cfg.spark.als)
        clicks.unpersist()
        return co, cf

    co, cf = fit(gen_cut)
    # the online co-clicks and fold-in serving adds, as at each query (train.py's replay)
    if g.online_replay:
        co.replay_covisits = cf.replay_covisits = replay_covisits(log, catalog.size)
    lap("fit_generators")
    models = ModelFiles.pack(catalog, co, cf, builder)
    rng = np.random.default_rng(cfg.seed)
    r = cfg.ranker
    # the coded exposures are read by every step below: computed once, kept in memory / on
    # disk (Spark's MEMORY_AND_DISK)
    log.exposures = log.exposures.select("iord", "user_id", "us", "ts", "pos", "akey", "aidx",
                                         "label").persist()
    log.clicks = log.clicks.persist()
    names = ("train", "valid")
    sel, n_q = select_queries(spark, log, [(gen_cut, valid_cut, r.max_train_impressions),
                                           (valid_cut, np.inf, r.max_valid_impressions)], rng)
    if n_q[0] == 0:
        raise DatasetError(f"{dataset_dir}: no impressions with both clicks and non-clicks "
                           "after the generator period; nothing to train the ranker on")
    out = assemble(spark, log, sel, models, half_life_hours=f.half_life_hours,
                   recent_clicks=f.recent_clicks,
                   recent_exposures=builder.exposures_read)
    both, ident = collect_set(out)
    sets, rows = {}, {}
    r0 = 0  # the train queries come first, then the valid ones
    for i, name in enumerate(names):
        q0, q1 = sum(n_q[:i]), sum(n_q[:i + 1])
        r1 = r0 + int(both[2][q0:q1].sum())
        sets[name] = (both[0][r0:r1], both[1][r0:r1], both[2][q0:q1])
        rows[name] = {k: (v[q0:q1] if k.startswith("query") else v[r0:r1])
                      for k, v in ident.items()}
        r0 = r1
    spark.catalog.clearCache()
    lap("features")
    return TrainingData(catalog, builder, ws, co, cf, sets, rows, n_q[0],
                        log.time_range, log.counts, valid_cut, lambda: fit(None), None)
