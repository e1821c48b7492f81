"""`make demo`, step 7: one cycle of the continuous training loop on the simulated world.

The world is split 12 hours before its end: the dataset as of then, and the last 12 hours
written to a real SQLite event log, as if the service had logged them since. A first cycle
(nothing active yet) trains and promotes the serving bundle; the demo cycle then exports the
logged events, trains a candidate on everything before the last 6 hours, replays those 6 hours
through both bundles, gates the candidate with the paired bootstrap and promotes or rejects it.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from newsdesk.pipelines.config import PipelineConfig

console = Console()


def demo_config(embedding_cache: Path) -> PipelineConfig:
    """The demo's pipeline config: short training, a 6-hour window."""
    return PipelineConfig.from_dict({
        # the demo keeps training short: fewer ranker impressions, a smaller drift reference
        "train": {"embedding_cache_dir": str(embedding_cache),
                  "reference_requests": 100, "ranker": {"max_train_impressions": 30_000}},
        "evaluation": {"window_hours": 6, "max_scored_impressions": 2000},
        "gate": {"margin": 0.005, "n_resamples": 1000},
    })


def run_pipeline_demo(sim_dir: Path, out: Path, *, embedding_cache: Path | None = None) -> dict:
    """Split the world, bootstrap an active bundle, run the demo cycle; its audit record."""
    from newsdesk.cli.pipeline_cmds import describe
    from newsdesk.data.eventlog import open_event_log
    from newsdesk.pipelines.loop import PipelineRunner
    from newsdesk.pipelines.window import dataset_before, latest_window, log_events_since

    cut, _ = latest_window(sim_dir, 12)
    dataset = dataset_before(sim_dir, out / "dataset", cut)
    log_url = f"sqlite:///{(out / 'events.db').resolve()}"
    with open_event_log(log_url) as log:
        n = log_events_since(sim_dir, cut, log)
    console.print(f"dataset as of 12 h before the end: {dataset}; {n} later events in {log_url}")
    cfg = demo_config(embedding_cache or out / "embedding-cache")
    bundles = out / "bundles"
    first = PipelineRunner(dataset, bundles, config=cfg).run_once()
    console.print(f"bootstrap cycle (no active bundle yet): {first['decision']} "
                  f"{first['candidate']}")
    runner = PipelineRunner(dataset, bundles, config=cfg, event_log=log_url)
    rec = runner.run_once()
    console.print(describe(rec))
    console.print(f"audit log: {runner.audit.path}; metrics: {runner.metrics.textfile}")
    console.print(f"ACTIVE: {json.loads((bundles / 'ACTIVE').read_text())['version']} "
                  f"(newsdesk serve --bundles {bundles} follows it)")
    console.print(f"same from the command line: newsdesk pipeline run --dataset {dataset} "
                  f"--bundles {bundles} --event-log {log_url} --once")
    return rec
