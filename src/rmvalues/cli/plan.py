"""`rmvalues plan`: the units of a scoring run, what is done, what remains, and the work left."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rmvalues.cli._options import CandidatesOption, ModelOption, PromptsOption, with_options
from rmvalues.runs.options import ScoreOptions


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)


@with_options(ScoreOptions)
def plan_command(
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Output directory of the run.")],
    prompts: PromptsOption = "paper-54",
    candidates: CandidatesOption = "vocab",
    units: Annotated[bool, typer.Option("--units", help="List every unit, not just the totals.")] = False,
    **options: Any,
) -> None:
    """Show a run's units, how many are done and remain, and its token forwards (no weights load)."""
    from rmvalues.runs.plan import plan

    result = plan(model, prompts, candidates, out, **options)
    if units:
        frame = result.to_frame()
        for row in frame.itertuples():
            typer.echo(f"{'done' if row.done else 'todo'}  {row.unit:<40} {row.key}  "
                       f"{row.token_forwards:>12,} token forwards")
    typer.echo(result.summary())
