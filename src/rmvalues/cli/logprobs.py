"""`rmvalues logprobs` and `rmvalues implicit`: LM log-prob runs and implicit reward models between
two stored runs (thin layer over :mod:`rmvalues.engines.logprobs` and :mod:`rmvalues.implicit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rmvalues.cli._options import PromptsOption, with_options
from rmvalues.runs.options import LogprobOptions


def register(app: typer.Typer) -> None:
    app.command("logprobs")(logprobs_command)
    app.command("implicit")(implicit_command)


@with_options(LogprobOptions)
def logprobs_command(
    model: Annotated[str, typer.Option(help="LM registry key (e.g. gemma-2-2b-it; see "
                                            "`rmvalues lms`), hub id or local model folder.")],
    out: Annotated[Path, typer.Option(help="Output directory (logprobs.parquet, manifest, "
                                           "vocabulary.parquet).")],
    kind: Annotated[str | None, typer.Option(
        help="instruct: chat template + generation prompt; pretrained: BOS + raw prompt "
             "(default: the registry's kind).")] = None,
    prompts: PromptsOption = "paper-54",
    **options: Any,
) -> None:
    """Full-vocabulary next-token log-probs of a causal LM for every prompt."""
    from rmvalues.engines.logprobs import run_logprobs
    from rmvalues.errors import InputError
    from rmvalues.models.chat import KINDS
    from rmvalues.models.lm_registry import resolve_lm_options

    model, kind, options["dtype"], _ = resolve_lm_options(model, kind, options["dtype"])
    if kind not in KINDS:
        raise InputError(f"--kind {kind!r}: choose 'pretrained' or 'instruct'.")
    if options["template"] is not None:
        options["template"] = options["template"].replace("\\n", "\n")
    run = run_logprobs(model, kind=kind, prompts=prompts, out_dir=out,  # type: ignore[arg-type]
                       **options)
    typer.echo(f"{run.model}: {len(run.prompt_ids)} prompts x {len(run.token_ids):,} tokens "
               f"({run.meta['padded_rows_excluded']} padded logit rows excluded) -> "
               f"{out.resolve()}/logprobs.parquet")


def implicit_command(
    out: Annotated[Path, typer.Option(help="Output directory.")],
    p: Annotated[str | None, typer.Option("--p", help="Stored log-prob run of the reference model p "
                                                      "(a `rmvalues logprobs --out` directory).")]
    = None,
    q: Annotated[str | None, typer.Option("--q", help="Stored log-prob run of the model q; "
                                                      "positive scores = preferred by q.")] = None,
    pairs: Annotated[str | None, typer.Option(
        help="all-instruct: every Gemma x Llama instruct pair of --runs on their common "
             "vocabulary (Fig 3 + a Table 1 per pair), instead of --p/--q.")] = None,
    runs: Annotated[list[Path] | None, typer.Option(
        "--runs", help="With --pairs: log-prob run folders, or a folder of them.")] = None,
    prompts: Annotated[str | None, typer.Option(
        help="Prompt set name or comma-separated prompt ids (default: all prompts of the runs).")]
    = None,
    metric: Annotated[str, typer.Option(
        help="mwlr | log_ratio | clip5 | clip10 | clip12 | clip15 | clip20 | clip30 | prob_diff | "
             "ratio | odds_ratio")] = "mwlr",
    join: Annotated[str, typer.Option(
        help="exact: decoded string (duplicates by max log-prob); normalized: the paper's "
             "normalised form.")] = "exact",
    aggregate: Annotated[str | None, typer.Option(
        help="Fold duplicates/variants: max | mean | logsumexp (default: max for exact, "
             "logsumexp for normalized).")] = None,
    renormalize: Annotated[bool, typer.Option(
        "--renormalize", help="Renormalise both distributions over the shared tokens first.")]
    = False,
    k: Annotated[int, typer.Option(help="Tokens on each side of the top/bottom table.")] = 15,
    table1_prompt: Annotated[str, typer.Option(
        help="Prompt of the top/bottom table (mean over prompts if the runs lack it).")]
    = "greatest_ever_one",
    drop_formatting: Annotated[bool, typer.Option(
        "--drop-formatting", help="Leave whitespace/Markdown/punctuation tokens out of the table.")]
    = False,
    targets: Annotated[str, typer.Option(help="Comma-separated target words (Fig 3).")]
    = "Freedom,Love",
    drop_nonfinite: Annotated[bool, typer.Option(
        "--drop-nonfinite", help="Leave out (prompt, token) rows whose score is NaN/inf instead "
        "of refusing (counted in the manifest).")] = False,
) -> None:
    """Implicit reward model between two stored log-prob runs (no model is loaded)."""
    from rmvalues.errors import InputError
    from rmvalues.implicit import write_implicit

    if pairs is not None:
        from rmvalues.analysis.lm_pairs import write_implicit_pairs

        if not runs or p or q:
            raise InputError("--pairs takes the runs from --runs (not --p/--q).")
        found = write_implicit_pairs(
            runs, out, pairing=pairs, metric=metric, prompts=prompts, k=k,
            table1_prompt=table1_prompt, drop_formatting=drop_formatting, progress=True,
            targets=[t.strip() for t in targets.split(",") if t.strip()])
        typer.echo(f"{len(found.pairs)} pairs on {found.n_common:,} common strings -> "
                   f"{out.resolve()}/ (target_scores.csv, one folder per pair)")
        return
    if p is None or q is None:
        raise InputError("give --p and --q (two runs), or --pairs all-instruct with --runs.")

    res = write_implicit(
        p, q, out, metric=metric, join=join, aggregate=aggregate,  # type: ignore[arg-type]
        renormalize_shared=renormalize, prompts=prompts, k=k, table1_prompt=table1_prompt,
        drop_formatting=drop_formatting, targets=[t.strip() for t in targets.split(",") if t.strip()],
        drop_nonfinite=drop_nonfinite,
    )
    typer.echo(f"{metric} of {res.q_model} over {res.p_model}: {res.report.summary()}")
    typer.echo(f"Results in {out.resolve()}/: {metric}.parquet, top_bottom.csv, target_scores.csv, "
               "join.json, manifest.json")
