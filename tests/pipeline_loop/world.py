"""A small simulated world split in two: a dataset as of a cut time, and the events after the
cut in a real SQLite event log, as if the service had logged them since the last training."""

from __future__ import annotations

from pathlib import Path

from newsdesk.data.eventlog import open_event_log
from newsdesk.pipelines.config import PipelineConfig
from newsdesk.pipelines.window import dataset_before, log_events_since
from newsdesk.simulation import SimulationConfig, simulate_to_dataset

SIM = SimulationConfig(seed=3, n_users=300, days=2.0, articles_per_day=40,
                       impressions_per_day=3000, backlog_days=1.0, slate_size=10)
TRAIN = {"embedder": "hashing", "seed": 0, "reference_requests": 0,
         "ranker": {"num_boost_round": 20, "min_data_in_leaf": 20},
         "features": {"bucket_minutes": 30.0}}


def pipeline_config(**overrides: object) -> PipelineConfig:
    data: dict[str, object] = {
        "train": TRAIN,
        "evaluation": {"window_hours": 12, "max_scored_impressions": 500},
        "gate": {"margin": 0.05, "n_resamples": 300},
        "retry": {"attempts": 2, "backoff_s": 0.01},
        "export": {"chunk_events": 2000},
    }
    data.update(overrides)
    return PipelineConfig.from_dict(data)


def simulate(out: Path) -> Path:
    simulate_to_dataset(SIM, out)
    return out


def split_world(full: Path, root: Path, cut: float) -> tuple[Path, str, int]:
    """(dataset as of `cut`, sqlite event log URL holding the rest, number of logged events)."""
    ds = dataset_before(full, root / "dataset", cut)
    url = f"sqlite:///{(root / 'events.db').resolve()}"
    with open_event_log(url) as log:
        n = log_events_since(full, cut, log)
    return ds, url, n
