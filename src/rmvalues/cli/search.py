"""`rmvalues search`: the best and worst multi-token responses of a reward model (thin layer over
:func:`rmvalues.runs.search.search_responses` and :mod:`rmvalues.analysis.search`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)


def search_command(
    model: Annotated[str, typer.Option(help="Registry key, Hugging Face hub id, or model folder.")],
    out: Annotated[Path, typer.Option(help="Output directory (results, trace, shards, manifest).")],
    prompts: Annotated[str, typer.Option(help="Prompt set name or YAML file.")] = "paper-54",
    method: Annotated[str, typer.Option(help="beam | gcg | exhaustive2.")] = "beam",
    direction: Annotated[str, typer.Option(help="max | min | both.")] = "max",
    length: Annotated[int, typer.Option(help="Response length in tokens (1-8; 2 for exhaustive2).")] = 4,
    tokens: Annotated[str, typer.Option(
        help="Allowed tokens: vocab | alpha | words, optionally :START-END (words = readable "
             "text: a word, then word-start tokens).")] = "vocab",
    include_special: Annotated[bool, typer.Option(
        "--include-special", help="Allow special/added tokens inside responses.")] = False,
    beam_width: Annotated[int, typer.Option(help="beam: responses kept per step.")] = 8,
    keep: Annotated[int, typer.Option(help="exhaustive2: responses reported per search.")] = 10,
    singles: Annotated[Path | None, typer.Option(
        help="exhaustive2: a finished `rmvalues score` run (folder or .parquet) whose top and "
             "bottom tokens are the first tokens (default: score the allowed tokens first).")] = None,
    first_tokens: Annotated[int, typer.Option(
        help="exhaustive2: N top and N bottom single tokens as first tokens.")] = 50,
    steps: Annotated[int, typer.Option(help="gcg: iterations.")] = 100,
    topk: Annotated[int, typer.Option(help="gcg: substitutions per position (top-k of the gradient).")] = 256,
    search_width: Annotated[int, typer.Option(help="gcg: candidates scored per step.")] = 512,
    fluency_model: Annotated[str | None, typer.Option(
        help="gcg: a small causal LM with the same tokenizer; adds its mean log-prob.")] = None,
    fluency_weight: Annotated[float, typer.Option(help="gcg: weight of the fluency term.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed (gcg's initial response and sampling).")] = 0,
    time_budget: Annotated[float | None, typer.Option(
        help="Seconds per prompt and direction; the best so far is reported when it runs out.")] = None,
    lexicon: Annotated[list[str] | None, typer.Option(
        help="Lexicons for the composition of the found responses (repeatable; default "
             "big-two-nouns and mfd2; 'none' skips it).")] = None,
    revision: Annotated[str | None, typer.Option(help="Hub revision (branch, tag or sha).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Candidates per forward batch.")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 | bfloat16 | float16.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, ...")] = None,
    date_string: Annotated[str, typer.Option(
        help='"Today Date" for Llama-3.1/3.2 templates.')] = "26 Jul 2024",
    chat_template: Annotated[str | None, typer.Option(
        help="Chat template (.jinja file or text) for tokenizers without one.")] = None,
    trust_remote_code: Annotated[bool, typer.Option(
        "--trust-remote-code", help="Allow the model repository's own Python code to run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Search the highest- or lowest-scoring k-token responses; re-running resumes."""
    from rmvalues.analysis.search import write_search_analysis
    from rmvalues.runs.search import search_responses

    result = search_responses(
        model, prompts, out, method=method, direction=direction, length=length, tokens=tokens,
        include_special=include_special, keep=keep, beam_width=beam_width, singles=singles,
        first_tokens=first_tokens, steps=steps, topk=topk, search_width=search_width,
        fluency_model=fluency_model, fluency_weight=fluency_weight, seed=seed,
        time_budget=time_budget, revision=revision, batch_size=batch_size, dtype=dtype,
        device=device, date_string=date_string, chat_template=chat_template,
        trust_remote_code=trust_remote_code, progress=not quiet)
    typer.echo(result.summary)
    lexicons = [] if lexicon == ["none"] else (lexicon or ["big-two-nouns", "mfd2"])
    written = write_search_analysis(result.table, out, lexicons=lexicons, singles=singles,
                                    source=result.path)
    typer.echo("analysis: " + ", ".join(str(p) for p in written))
