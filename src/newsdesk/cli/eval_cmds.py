"""`newsdesk evaluate DATASET_DIR --bundle BUNDLE [--protocol replay|mind|topk] [--json FILE]`.

The protocols are described in `newsdesk.evaluation.harness`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def evaluate(
    dataset_dir: Path = typer.Argument(..., help="Dataset directory (newsdesk import/simulate)."),
    bundle: Path = typer.Option(None, "--bundle", help="Model bundle directory to evaluate."),
    protocol: str = typer.Option("replay", "--protocol", help="replay | mind | topk"),
    window: str = typer.Option("last-day", "--window", help="Scored window: last-day | all."),
    k: int = typer.Option(10, "--k", min=1, help="List length for the topk protocol."),
    json_out: Path = typer.Option(None, "--json", help="Write the report JSON here."),
    report: Path = typer.Option(None, "--report", help="Write PREFIX.md/.png/.json."),
    predictions: Path = typer.Option(None, "--predictions",
                                     help="MIND leaderboard file of the bundle's ranks."),
    seed: int = typer.Option(0, "--seed"),
    resamples: int = typer.Option(1000, "--resamples", min=10, help="Bootstrap resamples."),
) -> None:
    """Evaluate a bundle against baselines with paired bootstrap intervals."""
    from newsdesk.evaluation.harness import run_evaluation

    rep = run_evaluation(dataset_dir, bundle, protocol, window=window, k=k, seed=seed,
                         n_resamples=resamples, predictions=predictions)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rep.to_dict(), indent=2, default=str))
    if report is not None:
        rep.write(report)
    typer.echo(rep.markdown())


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
