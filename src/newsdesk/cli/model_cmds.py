"""`newsdesk train` and `newsdesk bundles`: build and list model bundles."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        dataset_dir: Path = typer.Argument(..., help="Dataset directory (import / simulate)."),
        out: Path = typer.Option(..., "--out", help="Bundles directory; a new version is "
                                 "written inside it."),
        config: Path | None = typer.Option(None, "--config", help="TrainConfig YAML file."),
        engine: str | None = typer.Option(None, "--engine", help="local (default) or spark "
                                          "(the spark extra); overrides the config."),
        spark_master: str | None = typer.Option(None, "--spark-master", help="Spark master "
                                                "URL (default: local, every core)."),
    ) -> None:
        """Train the recommender on a dataset and write a versioned bundle; prints its version."""
        from newsdesk.pipelines.train import TrainConfig, train

        data = TrainConfig.from_yaml(config).model_dump() if config is not None else {}
        if engine is not None:
            data["engine"] = engine
        if spark_master is not None:
            data.setdefault("spark", {})["master"] = spark_master
        typer.echo(train(dataset_dir, out, TrainConfig.from_dict(data)))

    @app.command("bundles")
    def bundles_cmd(
        bundles_dir: Path = typer.Argument(..., help="Bundles directory."),
    ) -> None:
        """List the bundles of a directory (oldest first) with their validation metrics."""
        from newsdesk.models.bundle import list_bundles

        for b in list_bundles(bundles_dir):
            valid = b.metrics.get("valid", {})
            typer.echo(f"{b.version}\t{b.created_at}\tauc={valid.get('auc', float('nan')):.4f}"
                       f"\tndcg@10={valid.get('ndcg@10', float('nan')):.4f}")
