"""Point-in-time state of the log at each query, in Spark: the Spark twin of `features.replay`.

For a query at time t (microseconds `us`), only events strictly before t count, as in the
online store at request time:

* `user_click_lists`: the user's newest `recent_clicks` clicks, newest first. History clicks
  come before every logged click (oldest first, in list order), logged clicks follow in
  (time, scan order) -- exactly `replay.user_click_lists`. Per user, one sorted array of
  clicks is joined to its queries and cut at t with a filter (O(clicks of the user) per query;
  no per-query shuffle of the click log).
* `user_exposure_lists`: the user's newest `recent_exposures` shown articles (the
  `story_exposures` feature), in (time, impression scan order, position) order, newest first.
* `article_statistics` (the trending statistics): each row's article's decayed and raw click
  and impression counts at t, events keyed by statistics key, histories counted as clicks at
  their `as_of` time. A running sum per article over the union of events and query rows,
  ordered by time with a RANGE frame ending 1 us before the row (strictly before).
  Decayed sums are sums of exp(lam * (ts - anchor)); to keep exp() finite over long logs the
  time axis is cut per article into segments of 250 / lam seconds (~108 days at a 6 h
  half-life), each anchored at the start of the previous one: an event counts in its own and
  the next segment. Events older than a segment weigh < e^-250 and are left out, which is
  the only difference to the local engine (the local engine keeps them, at ~1e-109).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from newsdesk.features.replay import LN2

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from newsdesk.pipelines.spark.tables import SparkLog

LONG_MIN = -(2**63)


def user_click_lists(log: SparkLog, queries: DataFrame, recent_clicks: int) -> DataFrame:
    """queries (qn, user_id, us) -> (qn, click_idx array<long>, click_ts array<double>), the
    newest first; shorter than `recent_clicks` when the user has fewer clicks (pad later)."""
    from pyspark.sql import functions as F

    hist = log.histories.select(
        "user_id", F.struct(F.lit(LONG_MIN).cast("long").alias("k"), F.col("ord").alias("o1"),
                            F.col("pos").cast("long").alias("o2"),
                            F.col("aidx").cast("long").alias("art"), "ts").alias("c"))
    clk = log.clicks.select(
        "user_id", F.struct(F.col("us").alias("k"), F.col("ord").alias("o1"),
                            F.lit(0).cast("long").alias("o2"),
                            F.col("aidx").cast("long").alias("art"), "ts").alias("c"))
    per_user = (hist.union(clk).groupBy("user_id")
                .agg(F.array_sort(F.collect_list("c")).alias("clicks")))
    empty = F.array().cast(per_user.schema["clicks"].dataType)
    clicks = F.coalesce(F.col("clicks"), empty)  # a user without any click
    before = F.filter(clicks, lambda c: c["k"] < F.col("us"))
    newest = F.slice(F.reverse(before), 1, recent_clicks)
    out = (queries.select("qn", "user_id", "us").join(per_user, on="user_id", how="left")
           .select("qn", newest.alias("lst")))
    return out.select("qn", F.transform("lst", lambda c: c["art"]).alias("click_idx"),
                      F.transform("lst", lambda c: c["ts"]).alias("click_ts"))


def user_exposure_lists(log: SparkLog, queries: DataFrame, recent_exposures: int
                        ) -> DataFrame:
    """queries (qn, user_id, us) -> (qn, exposure_idx array<long>): the user's newest shown
    articles before the query, newest first, a slate's last position first (catalog index,
    -1 outside it) -- `replay.user_exposure_lists`, shorter when the user saw fewer."""
    from pyspark.sql import functions as F

    shown = log.exposures.select(
        "user_id", F.struct(F.col("us").alias("k"), F.col("iord").alias("o1"),
                            F.col("pos").cast("long").alias("o2"),
                            F.col("aidx").cast("long").alias("art")).alias("e"))
    per_user = shown.groupBy("user_id").agg(F.array_sort(F.collect_list("e")).alias("shown"))
    empty = F.array().cast(per_user.schema["shown"].dataType)
    before = F.filter(F.coalesce(F.col("shown"), empty), lambda e: e["k"] < F.col("us"))
    newest = F.slice(F.reverse(before), 1, recent_exposures)
    return (queries.select("qn", "user_id", "us").join(per_user, on="user_id", how="left")
            .select("qn", F.transform(newest, lambda e: e["art"]).alias("exposure_idx")))


def article_statistics(log: SparkLog, rows: DataFrame, *, half_life_hours: float
                       ) -> DataFrame:
    """rows (rid, akey, us) -> (rid, dc, di, cc, ci): decayed clicks, decayed impressions,
    clicks, impressions of the row's article before `us` (STAT_COLUMNS); rows whose akey < 0
    get zeros. `rid` is any unique row id."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lam = LN2 / (half_life_hours * 3600.0)
    seg_s = 250.0 / lam
    seg_us = int(seg_s * 1e6)
    ev = (log.histories.select("akey", "us", "ts", F.lit(0).alias("kind"))
          .union(log.clicks.select("akey", "us", "ts", F.lit(0).alias("kind")))
          .union(log.exposures.select("akey", "us", "ts", F.lit(1).alias("kind")))
          .filter(F.col("akey") >= 0)
          .withColumn("rid", F.lit(None).cast("long")))
    q = rows.filter(F.col("akey") >= 0).select(
        "akey", "us", (F.col("us").cast("double") * F.lit(1e-6)).alias("ts"),
        F.lit(2).alias("kind"), "rid")
    both = ev.union(q)
    span = F.broadcast(both.groupBy("akey").agg(F.min("us").alias("a0"),
                                                F.max("us").alias("a1")))
    both = both.join(span, on="akey")
    seg = F.floor((F.col("us") - F.col("a0")) / F.lit(seg_us)).cast("long")
    last = F.floor((F.col("a1") - F.col("a0")) / F.lit(seg_us)).cast("long")
    # an event also counts in the next segment (when the article has one); a row only in its own
    segs = F.when((F.col("kind") < 2) & (seg < last), F.array(seg, seg + 1)).otherwise(
        F.array(seg))
    both = both.withColumn("seg", F.explode(segs))
    anchor = F.col("a0").cast("double") / F.lit(1e6) + (F.col("seg") - 1) * F.lit(seg_s)
    w = F.exp(F.lit(lam) * (F.col("ts") - anchor))
    both = both.select(
        "akey", "seg", "us", "kind", "rid", anchor.alias("anchor"), "ts",
        F.when(F.col("kind") == 0, w).otherwise(0.0).alias("wc"),
        F.when(F.col("kind") == 1, w).otherwise(0.0).alias("wi"),
        F.when(F.col("kind") == 0, 1).otherwise(0).alias("nc"),
        F.when(F.col("kind") == 1, 1).otherwise(0).alias("ni"))
    win = (Window.partitionBy("akey", "seg").orderBy("us")
           .rangeBetween(Window.unboundedPreceding, -1))
    back = F.exp(-F.lit(lam) * (F.col("ts") - F.col("anchor")))
    stats = (both.select(
        "rid", "kind", "ts", "anchor",
        F.coalesce(F.sum("wc").over(win), F.lit(0.0)).alias("swc"),
        F.coalesce(F.sum("wi").over(win), F.lit(0.0)).alias("swi"),
        F.coalesce(F.sum("nc").over(win), F.lit(0)).alias("cc"),
        F.coalesce(F.sum("ni").over(win), F.lit(0)).alias("ci"))
        .filter(F.col("kind") == 2)
        .select("rid", (F.col("swc") * back).alias("dc"), (F.col("swi") * back).alias("di"),
                F.col("cc").cast("double"), F.col("ci").cast("double")))
    zeros = rows.filter(F.col("akey") < 0).select(
        "rid", *[F.lit(0.0).alias(c) for c in ("dc", "di", "cc", "ci")])
    return stats.union(zeros)


def trending_snapshot(log: SparkLog, at: float, *, half_life_hours: float) -> DataFrame:
    """The trending statistics of every article at one time `at` (Unix s), from events
    strictly before it: (akey, dc, di, cc, ci); what the online store holds at `at`."""
    from pyspark.sql import functions as F

    lam = LN2 / (half_life_hours * 3600.0)
    at_us = int(np.round(at * 1e6))
    ev = (log.histories.select("akey", "us", "ts", F.lit(0).alias("kind"))
          .union(log.clicks.select("akey", "us", "ts", F.lit(0).alias("kind")))
          .union(log.exposures.select("akey", "us", "ts", F.lit(1).alias("kind")))
          .filter((F.col("akey") >= 0) & (F.col("us") < at_us)))
    w = F.exp(-F.lit(lam) * (F.lit(float(at)) - F.col("ts")))
    return ev.groupBy("akey").agg(
        F.sum(F.when(F.col("kind") == 0, w).otherwise(0.0)).alias("dc"),
        F.sum(F.when(F.col("kind") == 1, w).otherwise(0.0)).alias("di"),
        F.sum(F.when(F.col("kind") == 0, 1.0).otherwise(0.0)).alias("cc"),
        F.sum(F.when(F.col("kind") == 1, 1.0).otherwise(0.0)).alias("ci"))
