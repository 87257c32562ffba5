"""Typer options generated from an options dataclass (:class:`~rmvalues.runs.options.ScoreOptions`).

A command declares only its own parameters and takes ``**options``; :func:`with_options` adds one
typer option per dataclass field, with the field's type, default and help, so commands sharing the
options (``score``, ``plan``) cannot drift apart.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

#: The inputs of every command that runs a model, typed once.
ModelOption = Annotated[str, typer.Option(help="Registry key, Hugging Face hub id, model folder, "
                                                "`rmvalues train` run or checkpoint-N folder, or "
                                                "asset:NAME (a bundled small model).")]
PromptsOption = Annotated[str, typer.Option(help="Prompt set name or YAML file.")]
CandidatesOption = Annotated[str, typer.Option(
    help="vocab | vocab:START-END (ids START to END, both included) | lexicon:NAME | file:PATH "
         "(one text per line) | elo (the 7,530 EloEverything entities, for `rmvalues compare`).")]


def with_options(options: type, *, exclude: tuple[str, ...] = (),
                 only: tuple[str, ...] | None = None,
                 unset: bool = False) -> Callable[[Callable], Callable]:
    """Decorate a command taking ``**options`` so that its CLI has every field of ``options``
    (or the ``only`` ones). ``unset``: each option defaults to ``None`` and passes only when given
    (overrides of a preset, as ``rmvalues train`` takes :class:`TrainConfig` fields)."""
    from rmvalues.runs.options import cli_fields

    def decorate(command: Callable) -> Callable:
        own = inspect.signature(command, eval_str=True)
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values()
                  if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for name, kind, default, help_text, flag in cli_fields(options):
            if name in exclude or (only is not None and name not in only):
                continue
            if unset:
                kind, default = kind | None, None
            info = typer.Option(flag, help=help_text) if flag else typer.Option(help=help_text)
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[kind, info]))

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            return command(**kwargs)

        wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate
