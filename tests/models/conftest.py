"""Shared fixtures of the model tests: one small simulated world, the real MiniLM embedder and
one bundle trained on it (session-scoped: built once, ~20-40 s on a busy 2-core machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsdesk.content import Embedder, make_embedder
from newsdesk.features.training_log import LogArrays, load_log
from newsdesk.pipelines.train import TrainConfig, train
from newsdesk.simulation import SimulationConfig, simulate_to_dataset

SIM = SimulationConfig(seed=3, n_users=400, days=2.0, articles_per_day=40,
                       impressions_per_day=6000, backlog_days=1.0, slate_size=10)


def small_train_config(**overrides: object) -> TrainConfig:
    data = {"ranker": {"num_boost_round": 60, "min_data_in_leaf": 20},
            "features": {"bucket_minutes": 30.0}, "seed": 0}
    data.update(overrides)
    return TrainConfig.from_dict(data)


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "ds"
    simulate_to_dataset(SIM, out)
    return out


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return make_embedder("minilm")


@pytest.fixture(scope="session")
def bundle_dir(sim_dataset: Path, embedder: Embedder,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundles = tmp_path_factory.mktemp("bundles")
    version = train(sim_dataset, bundles, small_train_config(), embedder=embedder)
    return bundles / version


@pytest.fixture(scope="module")
def log(sim_dataset: Path) -> LogArrays:
    """The fixture world's log as replay arrays (shared by the pipeline tests)."""
    return load_log(sim_dataset)


@pytest.fixture(scope="module")
def at_time(log: LogArrays) -> float:
    """A serving time 80% into the log: most events before it, some after."""
    t0, t1 = log.time_range
    return t0 + 0.8 * (t1 - t0)
