"""The ``rmvalues`` command: a thin typer layer over the Python API, one module per command group.

Sub-command modules import nothing heavy at module level, so ``rmvalues --help`` stays fast.
Every :class:`~rmvalues.errors.RmvaluesError` becomes one clean line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys

import typer

from rmvalues import __version__
from rmvalues.cli import assets as assets_cli
from rmvalues.errors import RmvaluesError

app = typer.Typer(
    name="rmvalues",
    help="Measure the values a reward model or language model carries, and trace them to its base model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(assets_cli.app, name="assets")


# Command modules: (module, group). A group name mounts the module's typer ``app`` under it; ``None``
# calls the module's ``register(app)`` to add top-level commands.
_COMMAND_MODULES: tuple[tuple[str, str | None], ...] = (
    ("rmvalues.cli.lexicons", "lexicons"),
    ("rmvalues.cli.prompts", "prompts"),
    ("rmvalues.cli.demo", None),
    ("rmvalues.cli.score", None),
    ("rmvalues.cli.plan", None),
    ("rmvalues.cli.analyze", None),
    ("rmvalues.cli.compare", None),
    ("rmvalues.cli.logprobs", None),
    ("rmvalues.cli.lm", None),
    ("rmvalues.cli.dynamics", None),
    ("rmvalues.cli.report", None),
    ("rmvalues.cli.train", None),
    ("rmvalues.cli.search", None),
    ("rmvalues.cli.mitigate", "mitigate"),
    ("rmvalues.cli.audit", None),
)


def _register_commands() -> None:
    import importlib

    for module_name, group in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)


_register_commands()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning our errors into one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except RmvaluesError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
