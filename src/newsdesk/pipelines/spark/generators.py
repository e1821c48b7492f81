"""The static candidate models' heavy steps in Spark: co-click counts and ALS.

`coclick_counts` reproduces `CoClickGenerator.fit`: clicks of known articles (histories, then
logged clicks before `until`) ordered per user by (time, histories first, scan order), cut into
sessions at gaps > `session_gap_s`, every pair at most `window` apart in a session counted once
in each direction. The (a, b, count) triples come back to the driver as the CSR matrix the
generator serves from (pairs, not clicks: far fewer than the log).

The collaborative model is the local one (implicit's ALS, fitted on the driver from the click
pairs Spark collects: one row per click) unless `als = "spark"`, which fits Spark ML's ALS
(implicit preferences, confidence 1 + alpha * log1p(clicks) like the local model) on the
cluster and stores its factors in the same `CollaborativeGenerator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from newsdesk.models.candidates import CoClickGenerator, CollaborativeGenerator, Workspace

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from newsdesk.pipelines.spark.tables import SparkLog


def fit_clicks(log: SparkLog, until: float | None) -> DataFrame:
    """Histories plus logged clicks before `until` (None = all): user_id, aidx, ts, src, o1,
    o2 (src 0 = history, sorting before a logged click of the same time, as the local engine's
    stable sort of [histories, clicks])."""
    from pyspark.sql import functions as F

    clk = log.clicks if until is None else log.clicks.filter(F.col("ts") < F.lit(until))
    return (log.histories.select("user_id", "aidx", "ts", F.lit(0).alias("src"),
                                 F.col("ord").alias("o1"), F.col("pos").cast("long").alias("o2"))
            .union(clk.select("user_id", "aidx", "ts", F.lit(1).alias("src"),
                              F.col("ord").alias("o1"), F.lit(0).cast("long").alias("o2"))))


def coclick_counts(clicks: DataFrame, *, session_gap_s: float = 1800.0, window: int = 5
                   ) -> DataFrame:
    """(a, b, n): co-click counts of catalog articles a != b (both directions)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    c = clicks.filter(F.col("aidx") >= 0)
    w = Window.partitionBy("user_id").orderBy("ts", "src", "o1", "o2")
    gap = F.col("ts") - F.lag("ts", 1).over(w)
    c = c.withColumn("new", F.when(gap.isNull() | (gap > F.lit(session_gap_s)), 1).otherwise(0))
    c = c.withColumn("session", F.sum("new").over(w.rowsBetween(Window.unboundedPreceding, 0)))
    c = c.select("aidx", "session", *[
        F.struct(F.lead("aidx", k).over(w).alias("b"), F.lead("session", k).over(w).alias("s"))
        .alias(f"n{k}") for k in range(1, window + 1)])
    pairs = (c.select("aidx", "session",
                      F.explode(F.array(*[f"n{k}" for k in range(1, window + 1)])).alias("n"))
             .filter((F.col("n.s") == F.col("session")) & (F.col("n.b") != F.col("aidx")))
             .select(F.col("aidx").alias("a"), F.col("n.b").alias("b")))
    both = pairs.union(pairs.select(F.col("b").alias("a"), F.col("a").alias("b")))
    return both.groupBy("a", "b").agg(F.count(F.lit(1)).alias("n"))


def coclick_generator(ws: Workspace, clicks: DataFrame, n_articles: int,
                      params: dict[str, Any]) -> CoClickGenerator:
    """A CoClickGenerator whose matrix is the Spark counts (the same as its own `fit`)."""
    gen = CoClickGenerator(ws, **params)
    t = coclick_counts(clicks, session_gap_s=gen.session_gap_s, window=gen.window).toArrow()
    a = t.column("a").to_numpy().astype(np.int64)
    b = t.column("b").to_numpy().astype(np.int64)
    n = t.column("n").to_numpy().astype(np.float32)
    gen.set_matrix(sp.csr_matrix((n, (a, b)), shape=(n_articles, n_articles)))
    return gen


def collaborative_generator(ws: Workspace, clicks: DataFrame, n_articles: int,
                            params: dict[str, Any], *, seed: int, als: str = "implicit"
                            ) -> CollaborativeGenerator:
    """The CF model of the clicks: implicit's ALS on the driver (the local engine's model,
    bit for bit) or Spark ML's ALS (`als="spark"`)."""
    from pyspark.sql import functions as F

    gen = CollaborativeGenerator(ws, seed=seed, **params)
    if als == "spark":
        return _spark_als(gen, clicks.filter(F.col("aidx") >= 0), n_articles)
    t = clicks.filter(F.col("aidx") >= 0).select("user_id", "aidx").toArrow()
    ids = t.column("user_id").to_numpy(zero_copy_only=False).astype(str)
    # codes in sorted-id order, as the local engine's (sorted) user codes
    users, code = np.unique(ids, return_inverse=True)
    return gen.fit(users.tolist(), code.astype(np.int64),
                   t.column("aidx").to_numpy().astype(np.int64), n_articles)


def _spark_als(gen: CollaborativeGenerator, clicks: DataFrame, n_articles: int
               ) -> CollaborativeGenerator:
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    per = clicks.groupBy("user_id", "aidx").agg(F.count(F.lit(1)).alias("n"))
    users = per.select("user_id").distinct().withColumn(
        "u", F.row_number().over(Window.orderBy("user_id")) - 1)  # small: one partition is fine
    data = (per.join(users, on="user_id")
            .select(F.col("u").cast("int"), F.col("aidx").cast("int").alias("i"),
                    F.log1p("n").alias("r")))
    model = ALS(rank=gen.factors, maxIter=gen.iterations, regParam=gen.regularization,
                alpha=gen.alpha, implicitPrefs=True, seed=gen.seed, userCol="u", itemCol="i",
                ratingCol="r", nonnegative=False, coldStartStrategy="drop").fit(data)
    item = np.zeros((n_articles, gen.factors), np.float32)
    for r in model.itemFactors.toLocalIterator():
        item[r["id"]] = r["features"]
    uf = model.userFactors.join(users, users["u"] == model.userFactors["id"]).select(
        "user_id", "features").collect()
    gen.user_factors_ = np.asarray([r["features"] for r in uf], np.float32).reshape(
        len(uf), gen.factors)
    gen.user_index_ = {r["user_id"]: i for i, r in enumerate(uf)}
    gen.item_factors_ = item
    return gen
