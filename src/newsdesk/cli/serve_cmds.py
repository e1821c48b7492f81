"""`newsdesk serve`: run the recommendation API under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def serve(
    dataset: Path | None = typer.Option(None, "--dataset", help="Dataset directory whose "
                                        "articles table seeds the serving catalog."),
    bundles: Path = typer.Option(..., "--bundles", help="Directory of model bundles."),
    bundles_url: str | None = typer.Option(None, "--bundles-url", help="Bundles in object "
                                           "storage (s3://bucket/prefix); a verified local "
                                           "copy is kept in --bundles."),
    version: str | None = typer.Option(None, "--version", help="Bundle version to serve "
                                       "(default: the newest)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    redis_url: str | None = typer.Option(None, "--redis-url", help="Online store in Redis "
                                         "(several replicas); default: in-process + SQLite."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Where the embedded "
                                          "online store and the event log live."),
    event_log: str | None = typer.Option(None, "--event-log", help="Event log URL "
                                         "(sqlite:///..., memory://, or redis://... shared by "
                                         "replicas)."),
    clock_start: str | None = typer.Option(None, "--clock-start", help="Serve as of this "
                                           "ISO time (simulated / replayed worlds); the clock "
                                           "then runs in real time."),
    log_level: str = typer.Option("info", "--log-level"),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log",
                                    help="uvicorn's own access log (the app logs JSON)."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=64, help="Serving "
                                       "processes behind the port (default: NEWSDESK_WORKERS "
                                       "or half the cores); 1 = one process."),
) -> None:
    """Serve recommendations over HTTP (see /docs for the API)."""
    from newsdesk.serving.settings import load_settings
    from newsdesk.serving.workers import default_workers, run_workers

    n = workers if workers is not None else default_workers()
    settings = load_settings(
        workers=n,
        dataset_dir=dataset, bundles_dir=bundles, bundles_url=bundles_url,
        bundle_version=version, host=host, port=port,
        online_store_url=redis_url, state_dir=state_dir, event_log_url=event_log,
        log_level=log_level, clock_start=clock_start,
    )
    if dataset is not None and not dataset.is_dir():
        raise typer.BadParameter(f"dataset directory {dataset} does not exist",
                                 param_hint="--dataset")
    if n > 1 and run_workers(settings, n, access_log=access_log):
        return
    # one process (asked for, or no redis-server to share state through: the fallback)
    run_server(settings.model_copy(update={"workers": 1}), access_log=access_log)


def run_server(settings: object, *, access_log: bool = False) -> None:
    """Run the app factory under uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    from newsdesk.serving.app import create_app
    from newsdesk.serving.http_server import uvicorn_options
    from newsdesk.serving.malloc_trim import tune_heap
    from newsdesk.serving.settings import ServeSettings

    assert isinstance(settings, ServeSettings)
    # process-wide, so set by the server command rather than the app factory
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    # process-wide too (serving/malloc_trim.py)
    tune_heap(settings.malloc_trim_s, settings.malloc_mmap_threshold_kib)
    app = create_app(settings)
    uvicorn.run(app, access_log=access_log, lifespan="on", **uvicorn_options(settings))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
