"""Parity contract: the Spark engine builds the local engine's training set (same rows, same
labels, features within 1e-6) and a bundle whose replay AUC is within 0.005 of the local one.
Runs a real local SparkSession (tests/pipelines/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from newsdesk.content import make_embedder
from newsdesk.pipelines.train import (
    TrainConfig,
    TrainingData,
    local_training_data,
    train_from_data,
)

# the module fixture starts a JVM and runs every Spark step: minutes on a busy machine
pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

CFG = TrainConfig.from_dict({
    "embedder": "hashing", "seed": 0, "reference_requests": 0,
    "ranker": {"num_boost_round": 40, "min_data_in_leaf": 20},
    # every opt-in feature on (disabled: []): story_exposures reads the readers' exposure
    # lists, which each engine replays on its own
    "features": {"bucket_minutes": 30.0, "disabled": []},
})


@pytest.fixture(scope="module")
def both(spark: Any, small_world: Path) -> tuple[TrainingData, TrainingData]:
    from newsdesk.pipelines.spark.engine import spark_training_data

    emb = make_embedder("hashing")
    cfg = CFG.model_copy(update={"ranker": CFG.ranker.model_copy(
        update={"max_train_impressions": 300})})  # the seeded subsample is part of parity
    return (local_training_data(small_world, cfg, emb),
            spark_training_data(small_world, cfg, emb, spark=spark))


@pytest.mark.parametrize("name", ["train", "valid"])
def test_same_rows_labels_and_features(both: tuple[TrainingData, TrainingData],
                                       name: str) -> None:
    local, spark = both
    (xl, yl, gl), (xs, ys, gs) = local.sets[name], spark.sets[name]
    assert len(gl) > 20 and len(yl) > 100  # a real set, not two empty ones
    assert np.array_equal(gl, gs)
    rl, rs = local.rows[name], spark.rows[name]
    assert rl["query_user"] == rs["query_user"]
    assert np.array_equal(rl["query_ts"], rs["query_ts"])  # the same float times
    assert np.array_equal(rl["row_position"], rs["row_position"])
    assert np.array_equal(rl["row_key"], rs["row_key"])
    assert np.array_equal(yl, ys)
    assert xl.shape == xs.shape
    assert np.array_equal(np.isnan(xl), np.isnan(xs))
    diff = np.abs(np.nan_to_num(xl.astype(np.float64)) - np.nan_to_num(xs.astype(np.float64)))
    assert diff.max() <= 1e-6
    # every feature column carries signal in both (no column silently zero on one side)
    for j in range(xl.shape[1]):
        if np.isnan(xl[:, j]).all():  # a feature disabled in the config: missing on both
            assert np.isnan(xs[:, j]).all()
            continue
        assert np.nanstd(xl[:, j]) > 0 or np.nanstd(xs[:, j]) == 0
    # the exposure lists are replayed (not all zero), and alike
    from newsdesk.features.ranking_features import FEATURE_NAMES

    j = FEATURE_NAMES.index("story_exposures")
    assert np.nanstd(xl[:, j]) > 0 and (xl[:, j] > 0).mean() > 0.1


def test_the_sample_is_the_seeded_one(both: tuple[TrainingData, TrainingData]) -> None:
    local, spark = both
    assert local.train_queries == spark.train_queries == 300


def test_bundles_replay_auc_within_0_005(both: tuple[TrainingData, TrainingData],
                                         small_world: Path, tmp_path: Path) -> None:
    from newsdesk.evaluation.harness import run_evaluation

    emb = make_embedder("hashing")
    auc = {}
    for name, data in zip(("local", "spark"), both, strict=True):
        cfg = CFG.model_copy(update={"engine": name})
        version = train_from_data(small_world, tmp_path / name, cfg, data, emb)
        rep = run_evaluation(small_world, tmp_path / name / version, "replay",
                             window="last-day", k=10, seed=0, n_resamples=50, predictions=None)
        auc[name] = rep.systems["newsdesk"]["auc"]
    assert 0.5 < auc["local"] <= 1.0
    assert abs(auc["local"] - auc["spark"]) < 0.005
