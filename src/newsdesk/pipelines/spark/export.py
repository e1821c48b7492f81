"""Events to date-partitioned, compacted Parquet: the layout the Spark steps scale on.

    OUT/impressions/date=2026-01-05/part-....parquet
    OUT/interactions/date=2026-01-05/part-....parquet

Each date's rows are written by one task (one file per date: many small event-log parts are
compacted into few large ones), sorted by time. A table is written to a staging directory and
swapped into place, so a re-run replaces the previous export whole (idempotent) and a crash
mid-write leaves the previous export untouched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from newsdesk.pipelines.spark.tables import read_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EVENT_TABLES = ("impressions", "interactions")


def export_events(spark: SparkSession, dataset_dir: Path, out_dir: Path,
                  tables: tuple[str, ...] = EVENT_TABLES) -> dict[str, int]:
    """Write the event tables of a dataset directory partitioned by UTC date; returns the
    rows written per table."""
    from pyspark.sql import functions as F

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in tables:
        df = read_table(spark, Path(dataset_dir), name).drop("ord")
        df = df.withColumn("date", F.date_format(F.col("timestamp"), "yyyy-MM-dd"))
        staging = out_dir / f".staging-{name}-{uuid.uuid4().hex[:8]}"
        (df.repartition("date").sortWithinPartitions("date", "timestamp")
         .write.partitionBy("date").option("compression", "zstd").parquet(str(staging)))
        counts[name] = spark.read.parquet(str(staging)).count()
        target = out_dir / name
        trash = out_dir / f".trash-{name}-{uuid.uuid4().hex[:8]}"
        if target.exists():
            os.replace(target, trash)
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    return counts
