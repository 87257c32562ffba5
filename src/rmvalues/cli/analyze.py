"""`rmvalues analyze`, `reproduce` and `check-released`: thin layers over :mod:`rmvalues.analysis`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.command("reproduce")(reproduce_command)
    app.command("check-released")(check_released_command)


def _policy(match: str, variants: str, rank_over: str):
    from rmvalues.analysis.ranks import MatchPolicy

    return MatchPolicy(match=match, variants=variants, rank_over=rank_over)  # type: ignore[arg-type]


def analyze_command(
    runs: Annotated[list[Path], typer.Argument(help="Results tables: .parquet files/folders from "
                                                    "`rmvalues score`, released .csv files, or "
                                                    "`rmvalues implicit` outputs (pair folders).")],
    lexicon: Annotated[str, typer.Option(help="Built-in lexicon name or lexicon file.")] = "big-two-nouns",
    out: Annotated[Path | None, typer.Option(help="Write tables (Parquet + CSV), summary.txt and "
                                                  "manifest.json here.")] = None,
    model_meta: Annotated[Path | None, typer.Option(
        help="CSV/TOML/JSON with columns model, base[, base_version, size_b] for models outside "
             "the registry.")] = None,
    match: Annotated[str, typer.Option(help="exact | paper (ASCII-only, stripped, lower-case).")] = "exact",
    variants: Annotated[str, typer.Option(help="separate | mean (average variants of a normalised form).")] = "separate",
    rank_over: Annotated[str, typer.Option(help="items | rows (the authors' (term, category) rows).")] = "items",
    category: Annotated[list[str] | None, typer.Option(help="Keep only these categories (repeatable).")] = None,
    formula: Annotated[str | None, typer.Option(
        help="Mixed-model formula over the unit columns (default: base * category times the "
             "prompt set's framing, i.e. the paper's median_rank ~ base * category * framing).")]
    = None,
    anova: Annotated[str, typer.Option(help="F tests: sequential (R's anova(lme), terms in R's order) "
                                            "| marginal (each term after all others).")] = "sequential",
    correction: Annotated[str, typer.Option(help="bonferroni | holm | bh | none.")] = "bonferroni",
    resamples: Annotated[int, typer.Option(help="Permutation-test resamples R (smallest p: 2/(R+1)).")] = 9999,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for effect-size CIs.")] = 2000,
    ci_method: Annotated[str, typer.Option(help="Bootstrap CI: percentile (under-covers at small n) "
                                                "| bca.")] = "percentile",
    seed: Annotated[int, typer.Option(help="Run seed; each panel's permutation and bootstrap "
                                           "streams are spawned from it.")] = 42,
    top_k: Annotated[int | None, typer.Option(help="Also count categories among each prompt's top k.")] = None,
    null_draws: Annotated[int, typer.Option(
        help="Also compare the base x category interaction with N random item sets and N label "
             "shuffles (0: off); for one RM (or models without family metadata), its category "
             "contrast.")] = 0,
    group_by: Annotated[str | None, typer.Option(
        help="Compare the category contrast across this column: model | checkpoint | base | any "
             "--model-meta column (default: checkpoint for a sweep, model for several models).")] = None,
    drop_nonfinite: Annotated[bool, typer.Option(
        "--drop-nonfinite", help="Leave out rows whose score is NaN/inf instead of refusing "
        "(counted in the manifest).")] = False,
    prompts: Annotated[list[str] | None, typer.Option(
        help="Prompt set(s) (name or YAML; repeatable) whose factors the units get (default: the one "
             "the runs' manifests record, else paper-54).")] = None,
    sensitivity: Annotated[bool, typer.Option(
        help="Also estimate how the base-family gap varies with the prompt: variance components "
             "(prompt as a random effect) and the gap per prompt family, with bootstrap CIs.")] = False,
) -> None:
    """Ranks, median-rank units, category contrasts per run (paired over prompts, with effect sizes,
    CIs and null baselines), comparisons across checkpoints/models, and — with two base families of
    two models each — the paper's mixed model and Gemma-vs-Llama panel tests."""
    from rmvalues.analysis.pipeline import analyze, write_analysis

    result = analyze(runs, lexicon, drop_nonfinite=drop_nonfinite,
                     policy=_policy(match, variants, rank_over), model_meta=model_meta,
                     formula=formula, categories=category or None, correction=correction,
                     n_resamples=resamples, n_boot=boot, seed=seed, top_k=top_k,
                     null_draws=null_draws, ci_method=ci_method, anova_type=anova,
                     prompts=prompts or None, sensitivity=sensitivity, group_by=group_by)
    typer.echo(result.summary_text())
    if out is not None:
        write_analysis(result, out, runs=[str(r) for r in runs])
        typer.echo(f"\nwrote {out}/ (tables as .parquet and .csv, summary.txt, manifest.json)")


def reproduce_command(
    data: Annotated[Path | None, typer.Option(
        help="Local copy of the released data (a folder holding dict_big2_nouns/ etc.); default: "
             "$RMVALUES_PAPER_DATA, else download from the pinned commit.")] = None,
    paper_compatible: Annotated[bool, typer.Option(
        "--paper-compatible", help="Replicate the authors' R choices exactly (MFD column range, "
                                   "five merged foundations, row ranking, Welch-p stars).")] = False,
    dataset: Annotated[list[str] | None, typer.Option(
        help="big2-nouns | mfd2 | rank-results (repeatable; default: all).")] = None,
    mfd_grouping: Annotated[str, typer.Option(
        help="Corrected mode's MFD grouping: categories (ten) | foundations (five, both poles).")] = "categories",
    compare: Annotated[bool, typer.Option(help="Also run the other mode and print what differs.")] = True,
    out: Annotated[Path | None, typer.Option(help="Write the tables, summary.txt and manifest.json here.")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Folder for the HTML report of the reproduction (default: OUT/report when --out is given).")] = None,
    resamples: Annotated[int, typer.Option(help="Permutation-test resamples.")] = 9999,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for effect-size CIs.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed (the authors used 42).")] = 42,
) -> None:
    """Reproduce the paper's Fig 1 statistics (and Fig 4b table) from the authors' released data."""
    from rmvalues.analysis.pipeline import write_tables
    from rmvalues.analysis.reproduce import DEFAULT_DATASETS, format_report, reproduce

    result = reproduce(data, datasets=dataset or DEFAULT_DATASETS, paper_compatible=paper_compatible,
                       compare=compare, mfd_grouping=mfd_grouping,  # type: ignore[arg-type]
                       n_resamples=resamples, n_boot=boot, seed=seed)
    text = format_report(result)
    typer.echo(text)
    if out is not None:
        write_tables(out, result.tables(), text, "reproduce", mode=result.mode, data=str(data or ""),
                     sources=result.sources, skipped=result.skipped,
                     differences=result.differences, seed=seed, datasets=result.status,
                     rank_results_files=[f.summary() for f in result.rank_files])
        typer.echo(f"\nwrote {out}/")
    if report is None and out is not None:
        report = out / "report"
    if report is not None:
        from rmvalues.report.inputs import report_from_reproduce

        typer.echo(f"report: {report_from_reproduce(result, report)}")
    if result.failed:
        from rmvalues.errors import AnalysisError

        raise AnalysisError(f"not reproduced: {', '.join(result.failed)} (the reasons are listed "
                            "under == Datasets == above); the other datasets' results were kept.")


def check_released_command(
    model: Annotated[str, typer.Option(help="Registry key (its released CSV is found by name), or "
                                            "a model folder / hub id with --released.")],
    dataset: Annotated[str, typer.Option(help="big2-nouns | mfd2: which released words to score.")] = "big2-nouns",
    released: Annotated[Path | None, typer.Option(
        help="Released CSV to compare with (default: the model's file in the released data).")] = None,
    data: Annotated[Path | None, typer.Option(
        help="Local copy of the released data (as for `reproduce`); default: download, pinned.")] = None,
    prompts: Annotated[str, typer.Option(help="Prompt set name or file.")] = "paper-54",
    out: Annotated[Path | None, typer.Option(
        help="Write the scores (OUT/scores), released_check.csv/.parquet, summary.txt and "
             "manifest.json here.")] = None,
    tolerance: Annotated[float | None, typer.Option(
        help="Max |Δ| per prompt (default by dtype: float32 1e-3, float16 0.05, bfloat16 0.25).")] = None,
    dtype: Annotated[str | None, typer.Option(help="Default: the paper's dtype for the model.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda if present).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Candidates per forward batch.")] = None,
) -> None:
    """Score the released words in paper mode and compare with the paper's released scores."""
    from rmvalues.analysis.released_check import check_released
    from rmvalues.errors import ScoreError

    result = check_released(model, dataset=dataset, released=released, data_dir=data,
                            prompts=prompts, out=out, tolerance=tolerance, device=device,
                            dtype=dtype, batch_size=batch_size)
    typer.echo(result.summary())
    if out is not None:
        typer.echo(f"\nwrote {out}/")
    if not result.passed:
        raise ScoreError(f"{model} does not reproduce the released scores: "
                         f"{len(result.problems)} problem(s), listed above.")
