"""`rmvalues compare` and `rmvalues import-facct`: thin layers over :mod:`rmvalues.analysis.compare`
and :mod:`rmvalues.analysis.facct_data`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_DATA_HELP = ("Local copy of the FAccT release (its data/ folder, or a folder holding elo/, "
              "corpora/, reward_model_scores/); default: $RMVALUES_FACCT_DATA, else download from "
              "the pinned commit.")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
    app.command("import-facct")(import_command)


def compare_command(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Score runs (.parquet files/folders from `rmvalues score` or `import-facct`, or "
             "released .csv files). Runs scored with `--candidates elo` join the human-preference "
             "analysis.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write tables (Parquet + CSV), summary.txt and "
                                                  "manifest.json here.")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Folder for an HTML report with the FAccT section (default: OUT/report with --out).")] = None,
    facct_data: Annotated[Path | None, typer.Option(help=_DATA_HELP)] = None,
    released_elo: Annotated[bool, typer.Option(
        help="Include the paper's ten RMs' EloEverything scores in the human-preference analysis.")] = True,
    prompt: Annotated[list[str] | None, typer.Option(help="Keep only these prompt ids (repeatable).")] = None,
    k: Annotated[int, typer.Option(help="Depth of the top/bottom segments, NDCG@k and RBO.")] = 100,
    rbo_p: Annotated[float, typer.Option(help="RBO persistence p.")] = 0.9,
    duplicates: Annotated[str, typer.Option(
        help="Strings one RM encodes more than once: drop (from the shared vocabulary) | mean.")] = "drop",
    model_meta: Annotated[Path | None, typer.Option(
        help="CSV with model, base, developer, size_b for RMs outside the registry (RSA).")] = None,
    identity_lexicon: Annotated[str, typer.Option(help="Lexicon of identity terms.")] = "identity-terms",
    resamples: Annotated[int, typer.Option(help="Permutations (RSA, asymmetry).")] = 9999,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples (asymmetry CI).")] = 2000,
    null_draws: Annotated[int, typer.Option(help="Random words per identity-term null.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of every resampling.")] = 0,
) -> None:
    """The FAccT 2025 analyses on any set of runs: distributions, heterogeneity, asymmetry,
    framing, frequency, human preferences (EloEverything) and identity terms."""
    from rmvalues.analysis.compare import compare, write_compare

    result = compare(runs or [], facct_data=facct_data, released_elo=released_elo, prompts=prompt,
                     k=k, p=rbo_p, duplicates=duplicates, model_meta=model_meta,
                     identity_lexicon=identity_lexicon, n_perm=resamples, n_boot=boot,
                     n_null=null_draws, seed=seed)
    typer.echo(result.summary_text())
    if out is not None:
        write_compare(result, out, runs=[str(r) for r in runs or []])
        typer.echo(f"\nwrote {out}/ (tables as .parquet and .csv, summary.txt, manifest.json)")
    if report is None and out is not None:
        report = out / "report"
    if report is not None:
        from rmvalues.report.facct import report_from_compare

        typer.echo(f"report: {report_from_compare(result, runs or [], report)}")


def import_command(
    out: Annotated[Path, typer.Option(help="Folder for the score runs (<model>.parquet + manifest).")],
    model: Annotated[list[str] | None, typer.Option(
        help="Registry keys of the RMs to import (repeatable; default: all ten).")] = None,
    facct_data: Annotated[Path | None, typer.Option(help=_DATA_HELP)] = None,
) -> None:
    """Import the FAccT 2025 full-vocabulary RM scores (pinned, verified) as ordinary score runs."""
    from rmvalues.analysis.facct_data import import_facct_scores

    for path in import_facct_scores(out, model or None, data_dir=facct_data):
        typer.echo(f"wrote {path}")
