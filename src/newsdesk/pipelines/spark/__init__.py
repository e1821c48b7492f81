"""The Spark engine of the offline pipelines (the `[spark]` extra; pyspark is imported only
inside this package).

    session.py      SparkSession factory: local[N] by default, any master URL, 127.0.0.1
    tables.py       a dataset directory as coded DataFrames (the local engine's coding)
    pointintime.py  user click lists and article (trending) statistics at each query time
    generators.py   co-click counts; ALS (implicit on the driver, or Spark ML)
    featurize.py    FeatureBuilder over whole queries in the Python workers (mapInArrow)
    engine.py       `spark_training_data`: train's data steps end to end
    export.py       events to date-partitioned, compacted Parquet

The local engine (`pipelines.train.local_training_data`) is the reference: both produce the
same training set (tests/pipelines/test_spark_parity.py).
"""

from newsdesk.pipelines.spark.session import SparkSettings, require_pyspark, spark_session

__all__ = ["SparkSettings", "require_pyspark", "spark_session"]
