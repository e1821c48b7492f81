"""`newsdesk retention apply`: purge old events and erased readers from the log and datasets."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import typer

retention_app = typer.Typer(help="Retention and erasure of stored events.",
                            no_args_is_help=True)


@retention_app.command("apply")
def apply(
    dataset: list[Path] = typer.Option([], "--dataset", help="Dataset directory to purge "
                                       "(repeatable)."),
    event_log: str | None = typer.Option(None, "--event-log", help="Event log URL "
                                         "(sqlite:///... or redis://...)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="The service's state dir: "
                                          "its event log (events.db) and erasure list."),
    max_age_days: float | None = typer.Option(None, "--max-age-days", help="Purge events "
                                              "older than this (default: "
                                              "NEWSDESK_RETENTION_DAYS; unset: no age limit)."),
    erasures: list[Path] = typer.Option([], "--erasures", help="Erasure list file or "
                                        "directory (repeatable; the state dir's is read)."),
    now: datetime | None = typer.Option(None, "--now", help="Age events as of this ISO time "
                                        "(simulated worlds); default: now."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report here."),
) -> None:
    """Delete events older than the retention age and every event of an erased reader."""
    from newsdesk.data.erasure import erased_users
    from newsdesk.data.eventlog import open_event_log
    from newsdesk.data.retention import apply_retention
    from newsdesk.errors import ConfigError

    if max_age_days is None and os.environ.get("NEWSDESK_RETENTION_DAYS"):
        try:
            max_age_days = float(os.environ["NEWSDESK_RETENTION_DAYS"])
        except ValueError as exc:
            raise ConfigError("setting 'retention_days': not a number: "
                              f"{os.environ['NEWSDESK_RETENTION_DAYS']!r}") from exc
    if max_age_days is not None and max_age_days <= 0:
        raise typer.BadParameter(f"must be > 0, got {max_age_days}",
                                 param_hint="--max-age-days")
    if event_log is None and state_dir is not None and (state_dir / "events.db").exists():
        event_log = f"sqlite:///{(state_dir / 'events.db').resolve()}"
    erased = erased_users(state_dir, *erasures)
    if event_log is None and not dataset:
        raise typer.BadParameter("nothing to purge: give --event-log, --state-dir or --dataset",
                                 param_hint="--event-log / --dataset")
    if max_age_days is None and not erased:
        raise typer.BadParameter("no retention age (--max-age-days or NEWSDESK_RETENTION_DAYS) "
                                 "and no erased reader: nothing to do",
                                 param_hint="--max-age-days")
    log = open_event_log(event_log) if event_log else None
    try:
        report = apply_retention(event_log=log, datasets=list(dataset),
                                 max_age_days=max_age_days, erased=erased,
                                 now=now.timestamp() if now else None)
    finally:
        if log is not None:
            log.close()
    rows = sum(sum(d.values()) for d in report.dataset_deleted.values())
    typer.echo(f"retention: cutoff {report.cutoff or 'none'}, {len(erased)} erased readers; "
               f"event log: {report.event_log_deleted if log else '-'} events deleted; "
               f"datasets: {rows} rows deleted")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
