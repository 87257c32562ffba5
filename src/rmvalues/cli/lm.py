"""`rmvalues lms`, `rmvalues import-logprobs` and `rmvalues lm-values`: paper §4 over many LMs (thin
layer over :mod:`rmvalues.models.lm_registry`, :mod:`rmvalues.analysis.released_logprobs` and
:mod:`rmvalues.analysis.lm_pairs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("lms")(lms_command)
    app.command("import-logprobs")(import_logprobs_command)
    app.command("lm-values")(lm_values_command)


def lms_command() -> None:
    """The LM registry: the paper's twelve LMs (and extras), usable as `logprobs --model KEY`."""
    from rmvalues.models.lm_registry import known_lms

    for spec in known_lms().values():
        flags = ("" if spec.paper else " [not in the paper]") + (" [shard]" if spec.shard else "")
        typer.echo(f"{spec.key:<24} {spec.hub_id:<40} {spec.kind:<10} {spec.family:<6} "
                   f"{spec.dtype}{flags}")


def import_logprobs_command(
    out: Annotated[Path, typer.Option(help="Output folder: one run folder per model.")],
    model: Annotated[list[str] | None, typer.Option(
        help="LM registry key or hub id (repeatable; default: all twelve released LMs).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Offline folder with the released <org>--<model>.csv files (else downloaded from "
             "Oxford-HIPlab/iclr2026-lm-logprobs, sha256-pinned).")] = None,
) -> None:
    """Import the authors' released full-vocabulary log-probs as log-prob runs."""
    from rmvalues.analysis.released_logprobs import import_released_logprobs

    paths = import_released_logprobs(out, model or None, data_dir=data_dir, progress=True)
    typer.echo(f"{len(paths)} log-prob runs -> {out.resolve()}/")


def lm_values_command(
    runs: Annotated[list[Path], typer.Option(
        "--runs", help="Log-prob run folders, or a folder of them (repeatable).")],
    out: Annotated[Path, typer.Option(help="Output folder: one sub-folder per pair.")],
    pairs: Annotated[str, typer.Option(
        help="kind: same kind across families (Fig 2); family: base vs instruct within a family; "
             "all: every pair; joint: one analysis of all runs.")] = "kind",
    lexicon: Annotated[str, typer.Option(help="Lexicon name or file.")] = "big-two-nouns",
    prompts: Annotated[str, typer.Option(help="Prompt set the runs were computed on.")]
    = "paper-54",
) -> None:
    """Fig 2's analysis (log-prob ranks, Type-II ANOVA, Welch + BH) for pairs of LM runs."""
    from rmvalues.analysis.lm_pairs import write_lm_values_pairs

    results = write_lm_values_pairs(runs, out, pairing=pairs, lexicon=lexicon, prompts=prompts,
                                    progress=True)
    for name, res in results.items():
        typer.echo(f"{name}: {len(res.words)} words, {len(res.units)} units, "
                   f"residual df {res.residual_df}")
    typer.echo(f"Results in {out.resolve()}/ (one folder per pair; `rmvalues report` draws each)")
