"""`rmvalues analyze-training`: paper §5 from checkpoint sweeps and released rank results to Fig
4a/A5a, 4b/A5b, 5/A6 (thin layer over :mod:`rmvalues.analysis.training_dynamics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("analyze-training")(analyze_training_command)


def analyze_training_command(
    out: Annotated[Path, typer.Option(help="Output folder (tables, summary, manifest, report/).")],
    sweep: Annotated[list[Path] | None, typer.Option(
        help="A `rmvalues sweep --out` folder (repeatable): Fig 4a/A5a and 5/A6.")] = None,
    rank_results: Annotated[list[Path] | None, typer.Option(
        help="A released rank_results_*.csv (repeatable): Fig 4b/A5b.")] = None,
    rank_results_map: Annotated[Path | None, typer.Option(
        help="TOML mapping rank_results files to data_size/data_source/method (overrides the "
             "built-in map of the authors' values).")] = None,
    lexicon: Annotated[str, typer.Option(help="Lexicon name or file.")] = "big-two-expanded",
    strings: Annotated[str, typer.Option(
        help="Rank only candidates in this list of decoded strings (token-intersection, a file, "
             "or none).")] = "token-intersection",
    prompt: Annotated[str, typer.Option(
        help="The sweep prompt to analyse (the authors': greatest_ever_one), or 'all'.")]
    = "greatest_ever_one",
    family: Annotated[list[str] | None, typer.Option(
        help="SWEEP=FAMILY when a sweep's base family is not in its model name (repeatable).")]
    = None,
    report: Annotated[bool, typer.Option(help="Draw the figures and the HTML report.")] = True,
) -> None:
    """Training dynamics of trained RMs: median ranks per checkpoint, data ablations, rank changes."""
    from rmvalues.analysis.training_dynamics import analyze_training, write_training_analysis
    from rmvalues.errors import InputError

    families = {}
    for item in family or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--family {item!r}: write SWEEP=FAMILY, e.g. runs/sweep-a=Gemma.")
        families[key] = value
    result = analyze_training(
        sweep or [], lexicon=lexicon, strings=None if strings == "none" else strings,
        prompt=None if prompt == "all" else prompt, families=families,
        rank_results=rank_results or [], rank_results_map=rank_results_map)
    write_training_analysis(result, out, report=report, sweeps=[str(s) for s in sweep or []],
                            rank_results=[str(r) for r in rank_results or []], lexicon=lexicon,
                            strings=strings, prompt=prompt)
    for name, table in result.tables().items():
        typer.echo(f"{name}: {len(table):,} rows")
    typer.echo(f"Results in {out.resolve()}/" + (" (figures: report/)" if report else ""))
