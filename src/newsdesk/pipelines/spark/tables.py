"""A dataset directory as Spark DataFrames, coded exactly as the local engine codes it.

The local engine (`features.training_log.load_log`) is the reference; this module reproduces
its coding with Spark so the training sets agree row for row:

* statistics keys (`akey`): the catalog's articles in dataset order, then every other logged
  article id, sorted; `aidx` is the catalog index (= akey for catalog articles, else -1);
* order: the local engine reads the Parquet parts in file-name order and sorts by time with a
  stable sort, so ties in time keep the scan order. Every row here carries `ord` =
  (part number << 40) + row number in the part, from Spark's `_metadata`, which is that
  scan order; (us, ord) sorts like the local engine's arrays;
* times: `us` = Unix microseconds (long, exact), `ts` = us * 1e-6 (double, bit for bit the
  value the local engine computes from Polars' epoch).

The small tables (articles, the key index) go through the driver; the per-shown-item and
per-click tables stay distributed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.data.schema import Article

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ORD_SHIFT = 40  # rows per Parquet part < 2**40; parts < 2**23
US = 1e-6  # seconds per microsecond


@dataclass
class SparkLog:
    """The coded log: DataFrames plus the driver-side facts the features need.

    clicks:    user_id, akey, aidx, us, ts, ord, request_id   (type == "click" only)
    histories: user_id, akey, aidx, us, ts, ord, pos           (one row per history click)
    exposures: iord, request_id, user_id, us, ts, pos, akey, aidx, label
    """

    articles: list[Article]
    key_ids: list[str]
    clicks: DataFrame
    histories: DataFrame
    exposures: DataFrame
    t_first: float  # the first impression / click time (Unix s); null `as_of` = t_first - 1
    time_range: tuple[float, float]  # impressions' first and last time
    counts: dict[str, int]

    @property
    def n_articles(self) -> int:
        return len(self.articles)


def read_table(spark: SparkSession, root: Path, name: str) -> DataFrame:
    """One table of the dataset with `ord` (scan order) and, when timed, `us` and `ts`."""
    from pyspark.sql import functions as F

    from newsdesk.data.schema import TABLES
    from newsdesk.pipelines.spark.schema import spark_schema

    files = Dataset(root).files(name)
    if not files:
        return spark.createDataFrame([], spark_schema(TABLES[name])).withColumn(
            "ord", F.lit(0).cast("long"))
    part = F.create_map(*[x for i, f in enumerate(files) for x in (F.lit(f.name), F.lit(i))])
    df = spark.read.schema(spark_schema(TABLES[name])).parquet(*[str(f) for f in files])
    return df.withColumn(
        "ord", (part[F.col("_metadata.file_name")].cast("long") * F.lit(1 << ORD_SHIFT))
        + F.col("_metadata.row_index"))


def _times(df: DataFrame, col: str) -> DataFrame:
    from pyspark.sql import functions as F

    us = F.unix_micros(F.col(col))
    # us * 1e-6, not us / 1e6: Polars' epoch / 1e6 multiplies by the reciprocal, and the two
    # differ in the last bit for a third of the times (then age_hours does in float32)
    return df.withColumn("us", us).withColumn("ts", us.cast("double") * F.lit(US))


def load_spark_log(spark: SparkSession, dataset_dir: Path,
                   attribution_window_s: float = 3600.0) -> SparkLog:
    """The dataset as a SparkLog (see the module docstring); the same coding and labels as
    `load_log(dataset_dir, attribution_window_s)`."""
    from pyspark.sql import functions as F

    root = Path(dataset_dir)
    ds = Dataset(root)
    arts = ds.read("articles")
    articles = [Article.model_construct(**row) for row in arts.iter_rows(named=True)]
    n_arts = len(arts)

    clk = _times(read_table(spark, root, "interactions").filter(F.col("type") == "click"),
                 "timestamp").select("user_id", "article_id", "us", "ts", "ord", "request_id")
    imp = _times(read_table(spark, root, "impressions"), "timestamp").select(
        F.col("ord").alias("iord"), "request_id", "user_id", "us", "ts", "article_ids")
    hist = (read_table(spark, root, "histories")
            .select("user_id", "as_of", "ord", F.posexplode("article_ids"))
            .withColumnRenamed("col", "article_id").filter(F.col("article_id").isNotNull()))

    # the ids outside the catalog: few, so they are sorted on the driver
    known = set(arts["article_id"].to_list())
    logged = (clk.select("article_id")
              .union(hist.select("article_id"))
              .union(imp.select(F.explode("article_ids").alias("article_id")))
              .filter(F.col("article_id").isNotNull()).distinct())
    extra = sorted(set(logged.toArrow().column("article_id").to_pylist()) - known)
    key_ids = arts["article_id"].to_list() + extra
    keys = spark.createDataFrame(
        pl.DataFrame({"article_id": pl.Series(key_ids, dtype=pl.Utf8),
                      "akey": np.arange(len(key_ids), dtype=np.int64)}).to_pandas())
    keys = F.broadcast(keys)

    def code(df: DataFrame) -> DataFrame:
        df = df.join(keys, on="article_id", how="left")
        akey = F.coalesce(F.col("akey"), F.lit(-1).cast("long"))
        return df.withColumn("akey", akey).withColumn(
            "aidx", F.when(F.col("akey") < n_arts, F.col("akey")).otherwise(F.lit(-1)))

    clk = code(clk)
    exp = code(imp.select("iord", "request_id", "user_id", "us", "ts",
                          F.posexplode("article_ids")).withColumnRenamed("col", "article_id"))
    exp = exp.drop("article_id")

    # click attribution, as load_log: by request id when the clicks carry them, else a click
    # of the same user on the same article within the window after the impression
    c_agg = clk.agg(F.min("us"), F.count(F.lit(1)), F.count("request_id")).first()
    assert c_agg is not None
    if c_agg[2] > 0:
        hits = (clk.filter(F.col("request_id").isNotNull() & (F.col("akey") >= 0))
                .select("request_id", "akey").distinct()
                .join(imp.select("request_id", "iord"), on="request_id")
                .select("iord", "akey").distinct())
    else:
        c = clk.filter(F.col("akey") >= 0).select(
            "user_id", "akey", F.col("ts").alias("cts"))
        hits = (exp.filter(F.col("akey") >= 0).select("iord", "user_id", "akey", "ts")
                .join(c, on=["user_id", "akey"])
                .filter((F.col("cts") >= F.col("ts"))
                        & (F.col("cts") < F.col("ts") + F.lit(attribution_window_s)))
                .select("iord", "akey").distinct())
    exp = (exp.join(hits.withColumn("label", F.lit(1).cast("byte")), on=["iord", "akey"],
                    how="left")
           .withColumn("label", F.when((F.col("akey") >= 0) & F.col("label").isNotNull(),
                                       F.lit(1)).otherwise(F.lit(0)).cast("byte")))

    agg = imp.agg(F.min("us"), F.max("us"), F.count(F.lit(1))).first()
    assert agg is not None
    firsts = [v for v in (agg[0], c_agg[0]) if v is not None]
    t_first = min(firsts) * US if firsts else 0.0
    hist = code(hist)
    h_us = F.unix_micros("as_of")
    # a history without `as_of` sits just before the log (as load_log's fill_null)
    hist = hist.select(
        "user_id", "akey", "aidx", "ord", "pos",
        F.coalesce(h_us.cast("double") * F.lit(US), F.lit(t_first - 1.0)).alias("ts"),
    ).withColumn("us", F.round(F.col("ts") * F.lit(1e6)).cast("long"))
    t_range = ((agg[0] * US, agg[1] * US) if agg[0] is not None else (t_first, t_first))
    counts = {"articles": n_arts, "impressions": int(agg[2]), "clicks": int(c_agg[1])}
    return SparkLog(articles, key_ids, clk, hist, exp, t_first, t_range, counts)
