"""`newsdesk store load`: load a dataset into the online store (what `serve --dataset` does at
start, explicitly: before a deployment, into Redis for several replicas, or with `--since`)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

store_app = typer.Typer(help="The online store: load it from a dataset.", no_args_is_help=True)


@store_app.command("load")
def load(
    dataset: Path = typer.Argument(..., help="Dataset directory (newsdesk import / simulate)."),
    redis_url: str | None = typer.Option(None, "--redis-url", help="Load into Redis "
                                         "(the store of several replicas)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="The embedded store's "
                                          "directory (as given to newsdesk serve)."),
    event_log: str | None = typer.Option(None, "--event-log", help="Event log URL whose "
                                         "events are skipped (default: the state dir's)."),
    since: datetime | None = typer.Option(None, "--since", help="Load only events at or "
                                          "after this ISO time."),
    force: bool = typer.Option(False, "--force", help="Take over the lock of a load that "
                               "crashed (clear the store first)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report here."),
) -> None:
    """Load user histories, clicks and article statistics into the online store.

    Idempotent: loading the same dataset twice changes nothing; after the dataset grew, only
    newer events load. Stop `newsdesk serve` first when it uses the same embedded store.
    """
    from newsdesk.data.eventlog import open_event_log
    from newsdesk.errors import ConfigError
    from newsdesk.features import open_online_store
    from newsdesk.features.bootstrap import bootstrap_store, check_dataset

    check_dataset(dataset)
    if (redis_url is None) == (state_dir is None):
        raise typer.BadParameter("give exactly one of --redis-url and --state-dir",
                                 param_hint="--redis-url / --state-dir")
    if redis_url is not None:
        store = open_online_store(redis_url)
    else:
        assert state_dir is not None
        state_dir.mkdir(parents=True, exist_ok=True)
        store = open_online_store(f"memory:///{(state_dir / 'online.db').resolve()}")
    if event_log is None and state_dir is not None and (state_dir / "events.db").exists():
        event_log = f"sqlite:///{(state_dir / 'events.db').resolve()}"
    log = open_event_log(event_log) if event_log else None
    try:
        report = bootstrap_store(store, dataset, since=since, event_log=log, force=force)
    finally:
        store.close()  # the embedded store snapshots here
        if log is not None:
            log.close()
    typer.echo(report.summary())
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
    if report.status in ("busy", "interrupted"):
        raise ConfigError(f"store not loaded: {report.status} {report.detail}")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
