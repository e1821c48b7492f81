"""Entry point of the `newsdesk` command.

Each command group lives in its own module with a `register(app)` function; heavy imports happen
inside the commands so that `newsdesk --help` stays fast. Errors newsdesk raises on purpose are
printed as one line (exit 1); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from newsdesk.errors import NewsdeskError

COMMAND_MODULES = [
    "newsdesk.cli.eval_cmds",
    "newsdesk.cli.data_cmds",
    "newsdesk.cli.experiment_cmds",
    "newsdesk.cli.serve_cmds",
    "newsdesk.cli.model_cmds",
    "newsdesk.cli.store_cmds",
    "newsdesk.cli.retention_cmds",
    "newsdesk.cli.llm_cmds",
    "newsdesk.cli.pipeline_cmds",
]

app = typer.Typer(
    name="newsdesk",
    help="newsdesk: a news recommender platform (ingest, train, evaluate, serve, experiment).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}
err_console = Console(stderr=True)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _state["debug"] = debug


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def run() -> None:
    """Console-script entry: run the app, turning newsdesk errors into one-line messages."""
    try:
        app(standalone_mode=False)
    except NewsdeskError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        usage = getattr(typer, "TyperException", None)  # typer >= 0.29 vendors its own click
        if usage is not None and isinstance(exc, usage):
            err_console.print(f"[red]error:[/red] {exc.format_message()}", highlight=False,
                              soft_wrap=True)
            sys.exit(int(getattr(exc, "exit_code", 2)))
        if _state["debug"]:
            raise
        err_console.print(
            f"[red]internal error:[/red] {type(exc).__name__}: {exc} (rerun with --debug)",
            highlight=False, soft_wrap=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    run()
