"""Data commands: `newsdesk import ...`, `newsdesk simulate`, `newsdesk stats`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console()

import_app = typer.Typer(help="Import a dataset into a newsdesk dataset directory.",
                         no_args_is_help=True)


def _import(kind: str, src: Path, out: Path, skip_invalid: bool, as_json: bool) -> None:
    from newsdesk.data.importers import run_import

    report = run_import(kind, src, out, skip_invalid=skip_invalid, progress=not as_json)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        console.print(report.summary())


_SRC = typer.Argument(..., help="Source file or folder.")
_OUT = typer.Option(..., "--out", help="Dataset directory to write (replaced if it exists).")
_SKIP = typer.Option(False, "--skip-invalid", help="Skip and count bad rows instead of failing.")
_JSON = typer.Option(False, "--json", help="Print the import report as JSON.")


@import_app.command("mind")
def import_mind(src: Path = _SRC, out: Path = _OUT, skip_invalid: bool = _SKIP,
                as_json: bool = _JSON) -> None:
    """MIND format: a folder with behaviors.tsv and news.tsv (train/dev or test)."""
    _import("mind", src, out, skip_invalid, as_json)


@import_app.command("ebnerd")
def import_ebnerd(src: Path = _SRC, out: Path = _OUT, skip_invalid: bool = _SKIP,
                  as_json: bool = _JSON) -> None:
    """EB-NeRD format: behaviors.parquet, history.parquet and optional articles.parquet."""
    _import("ebnerd", src, out, skip_invalid, as_json)


@import_app.command("movielens")
def import_movielens(
    src: Path = typer.Argument(
        None, help="MovieLens folder (u.data or ratings.csv); default: the copy in recbole."),
    out: Path = _OUT, skip_invalid: bool = _SKIP, as_json: bool = _JSON,
) -> None:
    """MovieLens (100K u.data/u.item, or ratings.csv/movies.csv) as interaction data."""
    _import("movielens", src, out, skip_invalid, as_json)


@import_app.command("generic")
def import_generic(
    src: Path = _SRC, out: Path = _OUT, skip_invalid: bool = _SKIP, as_json: bool = _JSON,
    mapping: Path = typer.Option(None, "--mapping",
                                 help="YAML column mapping (see docs/generic-import.md)."),
) -> None:
    """Generic JSONL / CSV / Parquet files with a documented column mapping."""
    from newsdesk.data.importers import run_import

    report = run_import("generic", src, out, skip_invalid=skip_invalid, progress=not as_json,
                        mapping=mapping)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        console.print(report.summary())


def simulate(
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same world."),
    users: int = typer.Option(10_000, "--users", min=1, help="Number of users."),
    days: float = typer.Option(3.0, "--days", min=0.01, help="Simulated days."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to write."),
    articles_per_day: int = typer.Option(500, "--articles-per-day", min=1),
    impressions_per_day: int = typer.Option(50_000, "--impressions-per-day", min=1),
    slate_size: int = typer.Option(10, "--slate-size", min=1, max=100),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    world: str = typer.Option("v1", "--world",
                              help="v1 (topics) or v2 (stories, entities, bursts, German, "
                                   "devices, dismissals); docs/simulator.md."),
) -> None:
    """Generate a synthetic news world with a known click model (see newsdesk.simulation)."""
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    knobs: dict[str, Any] = dict(seed=seed, n_users=users, days=days,
                                 articles_per_day=articles_per_day,
                                 impressions_per_day=impressions_per_day, slate_size=slate_size)
    # an unknown world is refused by the config, naming the field
    config = (SimulationConfig.v2(**knobs) if world == "v2"
              else SimulationConfig(world=world, **knobs))
    summary = simulate_to_dataset(config, out, progress=not as_json)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        console.print(f"wrote simulated dataset to [bold]{out}[/bold]: "
                      + ", ".join(f"{k}={v}" for k, v in summary.items()))


def stats(
    dataset: Path = typer.Argument(..., help="Dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Counts, date range, CTR and catalog coverage of a dataset."""
    from newsdesk.data.stats import dataset_stats, render_stats

    result = dataset_stats(dataset)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        console.print(render_stats(result))


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.command("simulate")(simulate)
    app.command("stats")(stats)
