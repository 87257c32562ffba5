"""`rmvalues audit` and `rmvalues merge-checkpoint`: thin layers over :mod:`rmvalues.workflows.audit` and
:mod:`rmvalues.models.checkpoints`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
    app.command("merge-checkpoint")(merge_checkpoint_command)


def audit_command(
    model: Annotated[list[str], typer.Option(
        help="Reward model (repeatable: several are compared directly): registry key, hub id, "
             "folder, `rmvalues train` run folder (its last checkpoint), RUN/checkpoint-N, or "
             "asset:NAME (a bundled small model).")],
    out: Annotated[Path, typer.Option(help="Output folder: report.md, tables/, figures/, "
                                           "analysis/, scores/ (re-running resumes the scoring).")] = Path("audit"),
    lexicon: Annotated[list[str] | None, typer.Option(
        help="Lexicons to score (repeatable; default: big-two-nouns and mfd2).")] = None,
    prompts: Annotated[str, typer.Option(help="Prompt set name or YAML file.")] = "paper-54",
    gguf_file: Annotated[str | None, typer.Option(help="GGUF weights file inside a model folder.")] = None,
    null_draws: Annotated[int, typer.Option(
        help="Random word sets and label shuffles for the null baselines (0: off).")] = 999,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the null draws.")] = 42,
    match: Annotated[str, typer.Option(help="exact | paper: how candidates match lexicon terms.")] = "exact",
    compare_released: Annotated[bool, typer.Option(
        help="Place each model beside the paper's ten RMs (their released Big Two scores).")] = True,
    data: Annotated[Path | None, typer.Option(
        help="Local copy of the paper's released data (default: $RMVALUES_PAPER_DATA, else the "
             "pinned download).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda if present).")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 | bfloat16 | float16.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Candidates per forward batch.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Audit reward models: score the lexicons, test the category contrasts, compare with the
    paper's RMs, and write a report that opens with the answer."""
    from rmvalues.workflows.audit import DEFAULT_LEXICONS, audit

    result = audit(model, lexicons=lexicon or DEFAULT_LEXICONS, prompts=prompts, out=out,
                   gguf_file=gguf_file, device=device, dtype=dtype, batch_size=batch_size,
                   null_draws=null_draws, n_boot=boot, seed=seed, match=match, data_dir=data,
                   compare_released=compare_released, progress=not quiet)
    text = result.report.read_text("utf-8") if result.report else ""
    typer.echo(text.split("\n## Details")[0].rstrip())
    typer.echo(f"\nreport: {result.report}")


def merge_checkpoint_command(
    checkpoint: Annotated[Path, typer.Argument(
        help="A `rmvalues train` run folder (its last checkpoint) or RUN/checkpoint-N.")],
    out: Annotated[Path, typer.Option(help="Folder for the merged reward model.")],
    dtype: Annotated[str | None, typer.Option(help="float32 (default) | bfloat16 | float16.")] = None,
) -> None:
    """Write a training checkpoint (LoRA adapter + score head) as a plain reward-model folder."""
    from rmvalues.models.checkpoints import merge_checkpoint_ref

    typer.echo(f"wrote {merge_checkpoint_ref(checkpoint, out, dtype=dtype)}")
