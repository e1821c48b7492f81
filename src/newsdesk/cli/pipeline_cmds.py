"""`newsdesk pipeline run`: the continuous training loop (newsdesk.pipelines.loop)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

pipeline_app = typer.Typer(help="Offline pipelines: the continuous training loop.",
                           no_args_is_help=True)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_every(text: str) -> float:
    """'90s' | '30m' | '1h' | '1d' | '3600' -> seconds (ConfigError naming --every)."""
    from newsdesk.errors import ConfigError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if m is None or float(m.group(1)) <= 0:
        raise ConfigError(f"--every: expected a positive duration such as 30m, 1h or 3600, "
                          f"got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def describe(rec: dict[str, Any]) -> str:
    """One line per decision, with the primary figures."""
    head = f"{rec.get('decision', '?')}: candidate {rec.get('candidate') or '-'}"
    head += f" (active before: {rec.get('active_before') or '-'}, now: "
    head += f"{rec.get('active_after') or '-'})"
    if rec.get("error"):
        return f"{head}; error: {rec['error']}"
    reasons = "; ".join(rec.get("reasons", []))
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in rec.get("steps_s", {}).items())
    return f"{head}\n  {reasons}\n  steps: {steps}"


@pipeline_app.command("run")
def run(
    dataset: str = typer.Option(..., "--dataset", help="Dataset directory to grow and train "
                                "on, or an s3:// URL (then --state-dir is required)."),
    bundles: str = typer.Option(..., "--bundles", help="Bundles directory (the one `newsdesk "
                                "serve --bundles` serves: it watches its ACTIVE pointer), or "
                                "an s3:// URL (then --state-dir is required)."),
    event_log: str | None = typer.Option(None, "--event-log", help="Event log URL to export "
                                         "new events from (sqlite:///..., redis://...)."),
    config: Path | None = typer.Option(None, "--config", help="pipeline.yaml (gate, window, "
                                       "retries, train config)."),
    every: str | None = typer.Option(None, "--every", help="Run a cycle every 30m / 1h / 1d."),
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit."),
    engine: str = typer.Option("local", "--engine", help="local | spark"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Lock, audit.jsonl, "
                                          "pipeline.prom (default: BUNDLES/../pipeline-state)."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Also serve the "
                                            "metrics on 127.0.0.1:PORT/metrics."),
    mlflow: str | None = typer.Option(None, "--mlflow", help="MLflow tracking URI (default: "
                                      "none; 'default' = sqlite in the state dir)."),
) -> None:
    """Export new events, train a candidate, gate it against the active bundle, promote it."""
    from newsdesk.errors import ConfigError
    from newsdesk.pipelines.config import PipelineConfig
    from newsdesk.pipelines.loop import PipelineRunner
    from newsdesk.pipelines.trainer import check_engine

    if once == (every is not None):
        raise ConfigError("give exactly one of --once or --every DURATION")
    period = parse_every(every) if every is not None else None
    check_engine(engine)
    cfg = PipelineConfig.from_yaml(config) if config is not None else PipelineConfig()
    runner = PipelineRunner(dataset, bundles, config=cfg, event_log=event_log,
                            state_dir=state_dir, engine=engine)
    if mlflow is not None:
        from newsdesk.pipelines.tracking import MlflowTracker

        runner.tracker = MlflowTracker.for_uri(mlflow, runner.state_dir)
    if metrics_port is not None:
        runner.metrics.serve(metrics_port)
    typer.echo(f"pipeline state: {runner.state_dir} (audit.jsonl, pipeline.prom)")
    if period is None:
        typer.echo(describe(runner.run_once()))
        return
    runner.run_forever(period, on_record=lambda rec: typer.echo(describe(rec)))


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
