"""A small simulated world split in two: a dataset as of a cut time, and the events after the
cut in a real SQLite event log, as if the service had logged them since the last training."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.data.eventlog import open_event_log
from newsdesk.pipelines.config import PipelineConfig
from newsdesk.pipelines.window import dataset_before
from newsdesk.simulation import SimulationConfig, simulate_to_dataset

SIM = SimulationConfig(seed=3, n_users=400, days=2.0, articles_per_day=40,
                       impressions_per_day=6000, backlog_days=1.0, slate_size=10)
TRAIN = {"embedder": "hashing", "seed": 0, "reference_requests": 0,
         "ranker": {"num_boost_round": 40, "min_data_in_leaf": 20},
         "features": {"bucket_minutes": 30.0}}


def pipeline_config(**overrides: object) -> PipelineConfig:
    data: dict[str, object] = {
        "train": TRAIN,
        "evaluation": {"window_hours": 12, "max_scored_impressions": 1000},
        "gate": {"margin": 0.05, "n_resamples": 300},
        "retry": {"attempts": 2, "backoff_s": 0.01},
        "export": {"chunk_events": 2000},
    }
    data.update(overrides)
    return PipelineConfig.from_dict(data)


def simulate(out: Path) -> Path:
    simulate_to_dataset(SIM, out)
    return out


def event_rows(full: Path, since: float) -> list[dict]:
    """Impressions and interactions of `full` at or after `since`, as event-log records in
    time order (impressions before the clicks of the same instant)."""
    ds = Dataset(full)
    cut = pl.lit(int(since * 1e6)).cast(pl.Datetime("us", "UTC"))
    out: list[tuple[object, int, dict]] = []
    for kind, order in (("impression", 0), ("interaction", 1)):
        table = "impressions" if kind == "impression" else "interactions"
        frame = ds.read(table).filter(pl.col("timestamp") >= cut)
        for row in frame.iter_rows(named=True):
            rec = {k: v for k, v in row.items() if v is not None}
            rec["kind"] = kind
            out.append((row["timestamp"], order, rec))
    out.sort(key=lambda t: (t[0], t[1]))
    return [r for _, _, r in out]


def split_world(full: Path, root: Path, cut: float) -> tuple[Path, str, int]:
    """(dataset as of `cut`, sqlite event log URL holding the rest, number of logged events)."""
    ds = dataset_before(full, root / "dataset", cut)
    url = f"sqlite:///{(root / 'events.db').resolve()}"
    rows = event_rows(full, cut)
    with open_event_log(url) as log:
        for lo in range(0, len(rows), 2000):
            log.append(rows[lo:lo + 2000])
    return ds, url, len(rows)
