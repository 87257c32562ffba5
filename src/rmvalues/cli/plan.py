"""`rmvalues plan`: the units of a scoring run, what is done, what remains, and the work left."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rmvalues.cli._options import CandidatesOption, ModelOption, PromptsOption, with_options
from rmvalues.runs.options import ScoreOptions


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)


@with_options(ScoreOptions, exclude=("attribute",))
def plan_command(
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Output directory of the run.")],
    prompts: PromptsOption = "paper-54",
    candidates: CandidatesOption = "vocab",
    units: Annotated[bool, typer.Option("--units", help="List every unit, not just the totals.")] = False,
    estimate: Annotated[bool, typer.Option(
        "--estimate", help="Also load the model, score a short probe (256 candidates, one "
                           "prompt) and estimate the time left on this machine.")] = False,
    **options: Any,
) -> None:
    """Show a run's units, how many are done and remain, and its token forwards (no weights load;
    a training checkpoint, GGUF model or asset:NAME is loaded for its keys)."""
    from rmvalues.runs.plan import plan

    result = plan(model, prompts, candidates, out, **options)
    if units:
        frame = result.to_frame()
        for row in frame.itertuples():
            typer.echo(f"{'done' if row.done else 'todo'}  {row.unit:<40} {row.key}  "
                       f"{row.token_forwards:>12,} token forwards")
    typer.echo(result.summary())
    if estimate:
        from rmvalues.runs.estimate import estimate_run

        typer.echo(estimate_run(model, prompts, candidates, result.estimate()["scores_remaining"],
                                revision=options["revision"], dtype=options["dtype"],
                                device=options["device"], chat_template=options["chat_template"],
                                gguf_file=options["gguf_file"],
                                trust_remote_code=options["trust_remote_code"]).summary())
