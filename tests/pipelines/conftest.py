"""Fixtures of the pipeline tests: one real local SparkSession for the whole run (its JVM
start is the expensive part) and a small simulated world."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsdesk.simulation import SimulationConfig, simulate_to_dataset

SIM = SimulationConfig(seed=3, n_users=200, days=2.0, articles_per_day=25,
                       impressions_per_day=2000, backlog_days=1.0, slate_size=8)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="the [spark] extra is not installed")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (apt-get install default-jre-headless; .ci/run does)")
    from newsdesk.pipelines.spark import SparkSettings, spark_session

    # two shuffle partitions: the fixture is tiny, more tasks would only add overhead
    session = spark_session(SparkSettings.build(master="local[2]", driver_memory="1g",
                                                shuffle_partitions=2))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pipelines") / "ds"
    simulate_to_dataset(SIM, out)
    return out
