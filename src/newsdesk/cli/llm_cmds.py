"""`newsdesk llm ...` (the local model over HTTP) and `newsdesk enrich` (batch enrichment)."""

from __future__ import annotations

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


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
