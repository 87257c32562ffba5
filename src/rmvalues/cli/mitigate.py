"""`rmvalues mitigate ...`: mitigations of the base-family bias that write ordinary score runs, and
the `debias` comparison (thin layer over :mod:`rmvalues.analysis.mitigation` and
:mod:`rmvalues.analysis.debias`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Mitigate the base-family bias (runs that `analyze` and `report` read like any "
                       "RM) and measure the gap before/after.", no_args_is_help=True)


def _weights(items: list[str] | None) -> dict[str, float]:
    from rmvalues.errors import InputError

    out = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"--weight {item!r}: write MODEL=NUMBER.")
    return out


@app.command("ensemble")
def ensemble_command(
    runs: Annotated[list[Path], typer.Argument(help="Score runs of the member RMs (two base families).")],
    out: Annotated[Path, typer.Option(help="Folder for the ensemble's run (<name>.parquet + manifest).")],
    name: Annotated[str | None, typer.Option(help="Model name of the ensemble run.")] = None,
    model_meta: Annotated[Path | None, typer.Option(
        help="CSV/TOML/JSON with columns model, base for members outside the registry.")] = None,
    weight: Annotated[list[str] | None, typer.Option(help="MODEL=W member weight (repeatable; default 1).")] = None,
    same_family: Annotated[bool, typer.Option(
        help="Allow members of one base family (a control, not a cross-family ensemble).")] = False,
) -> None:
    """Average of z-scored rewards of RMs from different base families."""
    from rmvalues.analysis.mitigation import ensemble, write_mitigated

    result = ensemble(runs, name=name, model_meta=model_meta, weights=_weights(weight),
                      require_families=1 if same_family else 2)
    write_mitigated(result, out, runs=[str(r) for r in runs])
    typer.echo(result.summary())


@app.command("base-correct")
def base_correct_command(
    run: Annotated[Path, typer.Argument(help="Score run of one RM.")],
    implicit: Annotated[Path, typer.Option(
        help="Implicit reward of the RM's base pretrained->instruct shift: the folder (or "
             "mwlr.parquet) `rmvalues implicit` wrote.")],
    out: Annotated[Path, typer.Option(help="Folder for the corrected run.")],
    fit_prompt: Annotated[list[str] | None, typer.Option(
        help="Prompt id λ is fitted on (repeatable; default: a seeded split).")] = None,
    fit_fraction: Annotated[float, typer.Option(help="Share of prompts λ is fitted on (default split).")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the fit/evaluate split.")] = 0,
    lam: Annotated[float | None, typer.Option("--lambda", help="Use this λ instead of fitting it.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name of the corrected run.")] = None,
    model_meta: Annotated[Path | None, typer.Option(help="Model metadata (base family) file.")] = None,
) -> None:
    """r - λ·MWLR with λ fitted on held-out prompts; the run holds the other prompts."""
    from rmvalues.analysis.mitigation import base_corrected, write_mitigated

    result = base_corrected(run, implicit, fit_prompts=fit_prompt or None, fit_fraction=fit_fraction,
                            seed=seed, lam=lam, name=name, model_meta=model_meta)
    write_mitigated(result, out, run=str(run), implicit=str(implicit))
    typer.echo(result.summary())


@app.command("debias")
def debias_command(
    before: Annotated[list[Path], typer.Option(help="Original RMs' runs (repeatable).")],
    after: Annotated[list[Path], typer.Option(help="Mitigated runs from `rmvalues mitigate` (repeatable).")],
    out: Annotated[Path | None, typer.Option(help="Write debias_*.parquet/.csv, summary.txt, "
                                                  "manifest.json here (`rmvalues report` shows them).")] = None,
    lexicon: Annotated[str, typer.Option(help="Built-in lexicon name or lexicon file.")] = "big-two-nouns",
    model_meta: Annotated[Path | None, typer.Option(help="Model metadata (base family) file.")] = None,
    prompts: Annotated[list[str] | None, typer.Option(
        help="Prompt set(s) of the runs (default: the built-in sets; framing 'neutral' = controls).")] = None,
    pair: Annotated[list[str] | None, typer.Option(
        help="AFTER_MODEL=BEFORE_MODEL for after runs not written by `mitigate` (e.g. a "
             "counterbalanced RM vs the unbalanced one of the same seed; repeatable).")] = None,
    k: Annotated[int, typer.Option(help="Top-k of the control-ranking overlap.")] = 20,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 42,
) -> None:
    """The family gap before/after each mitigation (with CIs) and its price on neutral controls."""
    from rmvalues.analysis.debias import debias
    from rmvalues.analysis.pipeline import write_tables
    from rmvalues.errors import InputError

    pairs = {}
    for item in pair or []:
        a, sep, b = item.partition("=")
        if not sep or not a or not b:
            raise InputError(f"--pair {item!r}: write AFTER_MODEL=BEFORE_MODEL.")
        pairs[a] = b
    result = debias(before, after, lexicon, model_meta=model_meta, prompts=prompts or None, k=k,
                    n_boot=boot, seed=seed, pairs=pairs)
    text = result.summary_text()
    typer.echo(text)
    if out is not None:
        write_tables(out, result.tables(), text, "debias", lexicon=lexicon, before=[str(p) for p in before],
                     after=[str(p) for p in after], k=k, n_boot=boot, seed=seed, notes=result.notes)
        typer.echo(f"\nwrote {out}/")
