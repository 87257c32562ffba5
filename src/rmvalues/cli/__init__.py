"""The ``rmvalues`` command: a thin typer layer over the Python API, one module per command group.

Sub-command modules import nothing heavy at module level, so ``rmvalues --help`` stays fast, and
a module is imported only when one of its commands runs (:data:`COMMANDS`).
Every :class:`~rmvalues.errors.RmvaluesError` becomes one clean line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import typer
from typer.core import TyperGroup

from rmvalues import __version__
from rmvalues.errors import RmvaluesError
from rmvalues.registry import Registry

#: Command name -> where it comes from: a module's ``register(app)`` (which adds top-level commands,
#: this one among them) or a group's typer ``app``. A module is imported only when one of its
#: commands runs (or ``--help`` lists them all), so ``rmvalues score`` never imports training code.
COMMANDS: Registry[Any] = Registry("command", hint="see `rmvalues --help`")
for _module, _names in {
    "demo": ("demo",),
    "score": ("score",),
    "plan": ("plan",),
    "analyze": ("analyze", "reproduce", "check-released"),
    "compare": ("compare", "import-facct"),
    "logprobs": ("logprobs", "implicit"),
    "lm": ("lms", "import-logprobs", "lm-values"),
    "dynamics": ("analyze-training",),
    "report": ("report",),
    "train": ("train", "sweep", "inject", "validate-metrics"),
    "search": ("search",),
    "audit": ("audit", "merge-checkpoint"),
}.items():
    for _name in _names:
        COMMANDS.register(_name, f"rmvalues.cli.{_module}:register")
for _module in ("assets", "lexicons", "prompts", "mitigate"):  # command groups, listed last
    COMMANDS.register(_module, f"rmvalues.cli.{_module}:app")
del _module, _names, _name


def load_command(name: str) -> Any:
    """The click command ``name`` (a group's for a command group), built from its module."""
    entry = COMMANDS.get(name)
    if isinstance(entry, typer.Typer):
        group = typer.main.get_group(entry)
        group.name = name  # as add_typer(entry, name=name) names it
        return group
    commands = typer.Typer()
    entry(commands)
    return typer.main.get_group(commands).commands[name]


class _CommandMap(MutableMapping[str, Any]):
    """A group's commands: its own, then every name in :data:`COMMANDS`, each built on first lookup
    (so listing, help, lookup and typo suggestions all see every command)."""

    def __init__(self, own: Mapping[str, Any]) -> None:
        self._built = dict(own)
        self._own = list(own)  # listed first, then the registry's, in a fixed order

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = load_command(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        names = dict.fromkeys([*self._own, *COMMANDS, *self._built])
        yield from (name for name in names if name in self._built or name in COMMANDS)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class LazyCommands(TyperGroup):
    """The root group, whose commands come from :data:`COMMANDS`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _CommandMap(self.commands)


app = typer.Typer(
    name="rmvalues",
    cls=LazyCommands,
    help="Measure the values a reward model or language model carries, and trace them to its base model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    # While the options are parsed: the group would otherwise stop first at its missing command.
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                 is_eager=True, callback=_print_version),
) -> None:
    """The options before any command."""


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
        if isinstance(exc, _click_errors()):
            exc.show()
            return exc.exit_code
        raise
    return 0


def _click_errors() -> tuple[type[Exception], ...]:
    """click's ``ClickException`` and, where typer raises its vendored click's (``typer._click``,
    typer 0.2x), that one too: an unknown command is a usage line, not a traceback."""
    import click

    return (click.ClickException,
            *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))
