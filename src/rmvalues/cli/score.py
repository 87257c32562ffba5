"""`rmvalues score`: exhaustive token search with one reward model (thin layer over the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rmvalues.cli._options import CandidatesOption, ModelOption, PromptsOption, with_options
from rmvalues.runs.options import ScoreOptions


def register(app: typer.Typer) -> None:
    app.command("score")(score_command)


@with_options(ScoreOptions)
def score_command(
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Output directory (shards, merged table, manifest).")],
    prompts: PromptsOption = "paper-54",
    candidates: CandidatesOption = "vocab",
    verify: Annotated[int, typer.Option(
        help="Re-score N random pairs through the reference path; fail on a mismatch.")] = 0,
    verify_tolerance: Annotated[float | None, typer.Option(
        help="Max |fast - reference| for --verify (default: by dtype, times the scores' std).")]
    = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    executor: Annotated[str | None, typer.Option(
        help="local | accelerate | slurm | ray: run as a plan of units (see `rmvalues plan`).")] = None,
    executor_config: Annotated[Path | None, typer.Option(
        help="Executor options (YAML/TOML, one section per executor).")] = None,
    **options: Any,
) -> None:
    """Score every prompt x candidate with a reward model; re-running resumes unfinished shards."""
    import logging

    from rich.console import Console
    from rich.logging import RichHandler

    from rmvalues.api import score

    console = Console(stderr=True)
    logger = logging.getLogger("rmvalues")
    if not logger.handlers:
        logger.addHandler(RichHandler(console=console, show_path=False))
    attribute = options.pop("attribute")
    if executor or executor_config or options["shard_size"] or options["device_map"]:
        from rmvalues.errors import InputError
        from rmvalues.runs.spec import RunSpec
        from rmvalues.scale import execute

        if attribute:
            raise InputError("--attribute runs on the plain path; drop --executor and its options.")
        if options["gguf_file"] or model.startswith("asset:"):
            raise InputError("GGUF models (--gguf-file, asset:NAME) run on the plain path: drop "
                             "--executor/--shard-size/--device-map")
        if verify:
            raise InputError("--verify runs on the plain path: run `rmvalues score --verify N` "
                             "without --executor afterwards (it resumes every finished shard)")
        spec = RunSpec.build(model, prompts, candidates, **options)
        typer.echo(execute(spec, out, executor, executor_config).summary)
        return
    if attribute:
        from rmvalues.engines.attributes import score_attributes

        for res in score_attributes(
                model, prompts, candidates, out, attributes="all" if "all" in attribute else attribute,
                verify=verify, verify_tolerance=verify_tolerance, progress=not quiet, **options):
            typer.echo(res.summary)
        return
    result = score(model, prompts, candidates, out, verify=verify,
                   verify_tolerance=verify_tolerance, progress=not quiet, **options)
    typer.echo(result.summary)
