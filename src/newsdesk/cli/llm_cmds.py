"""`newsdesk llm ...` (the local model over HTTP) and `newsdesk enrich` (batch enrichment)."""

from __future__ import annotations

from pathlib import Path

import typer

llm_app = typer.Typer(help="LLM providers: serve the local model over the OpenAI protocol.",
                      no_args_is_help=True)


@llm_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8081, "--port"),
    model: str | None = typer.Option(None, "--model", help="Packaged model (smollm2-135m, "
                                     "gemma3-270m) or a .gguf path; default: NEWSDESK_LLM_MODEL "
                                     "or smollm2-135m."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads of the "
                                       "model (default: NEWSDESK_LLM_LOCAL_THREADS or 1)."),
    timeout_s: float = typer.Option(60.0, "--timeout", min=0.1, help="Per-request limit (s)."),
    allow_public_bind: bool = typer.Option(False, "--allow-public-bind", help="Listen on a "
                                           "non-loopback address (put TLS and auth in front)."),
    log_level: str = typer.Option("warning", "--log-level"),
) -> None:
    """Serve the local model at /v1/chat/completions and /v1/models (OpenAI protocol)."""
    import uvicorn

    from newsdesk.llm.local import LocalProvider
    from newsdesk.llm.server import create_llm_app
    from newsdesk.llm.settings import LOOPBACK, load_llm_settings

    if host not in LOOPBACK and not allow_public_bind:
        raise typer.BadParameter(f"{host!r} is not loopback; add --allow-public-bind",
                                 param_hint="--host")
    settings = load_llm_settings(model=model, local_threads=threads)
    provider = LocalProvider.from_settings(settings)
    typer.echo(f"serving {provider.model} ({provider.path.name}) on http://{host}:{port}/v1",
               err=True)
    uvicorn.run(create_llm_app(provider, timeout_s=timeout_s), host=host, port=port,
                log_level=log_level, access_log=False)




def enrich(
    dataset: Path = typer.Argument(..., help="Dataset directory (its articles table)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Enrich at most this many "
                                     "articles not enriched yet (a re-run continues)."),
    newest_first: bool = typer.Option(False, "--newest-first", help="Newest articles first "
                                      "(by published_at): what readers see now is done first."),
    provider: str | None = typer.Option(None, "--provider", help="local | openai (default: "
                                        "NEWSDESK_LLM_PROVIDER or local)."),
    model: str | None = typer.Option(None, "--model", help="Model name or .gguf path."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible server "
                                        "(with --provider openai)."),
    out: Path | None = typer.Option(None, "--out", help="Where the enrichment table goes "
                                    "(default: the dataset directory)."),
    prompt_version: int | None = typer.Option(None, "--prompt-version", min=1,
                                              help="enrich.vN (default: the newest)."),
    timeout_s: float = typer.Option(300.0, "--timeout", min=1, help="Per-article limit (s): "
                                    "a small local model needs tens of seconds per article."),
) -> None:
    """Enrich articles with the LLM (topics, keywords, entities, summary, labels) in batch."""
    import json
    import sys

    from newsdesk.errors import DatasetError
    from newsdesk.llm.batch import enrich_dataset
    from newsdesk.llm.enrichment import Enricher
    from newsdesk.llm.factory import make_provider
    from newsdesk.llm.prompts import load_prompt
    from newsdesk.llm.settings import load_llm_settings

    if not (dataset / "articles").is_dir():
        raise DatasetError(f"{dataset}: no articles table (is it a dataset directory?)")
    settings = load_llm_settings(provider=provider, model=model, base_url=base_url,
                                 timeout_s=timeout_s)
    guarded = make_provider(settings)
    enricher = Enricher(guarded, load_prompt("enrich", prompt_version),
                        metrics=getattr(guarded, "metrics", None),
                        max_tokens=settings.max_tokens_for("enrich"),
                        timeout_s=settings.timeout_s)

    def progress(report):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        done = report.enriched + sum(report.dropped.values())
        if done and done % 10 == 0:
            print(f"enriched {report.enriched}, dropped {sum(report.dropped.values())}, "
                  f"{report.articles_per_s:.3f} articles/s", file=sys.stderr, flush=True)

    try:
        report = enrich_dataset(dataset, enricher, limit=limit, out_dir=out, progress=progress,
                                newest_first=newest_first)
    finally:
        guarded.close()
    typer.echo(json.dumps({"model": guarded.model, "prompt": enricher.prompt.id,
                           **report.as_dict()}))


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
    app.command("enrich")(enrich)
