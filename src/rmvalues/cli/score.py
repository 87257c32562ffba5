"""`rmvalues score`: exhaustive token search with one reward model (thin layer over the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("score")(score_command)


def score_command(
    model: Annotated[str, typer.Option(help="Registry key, Hugging Face hub id, model folder, "
                                            "`rmvalues train` run or checkpoint-N folder, or "
                                            "asset:NAME (a bundled small model).")],
    out: Annotated[Path, typer.Option(help="Output directory (shards, merged table, manifest).")],
    prompts: Annotated[str, typer.Option(help="Prompt set name or YAML file.")] = "paper-54",
    candidates: Annotated[str, typer.Option(
        help="vocab | vocab:START-END (ids START to END, both included) | lexicon:NAME | file:PATH (one text per line) | elo (the "
             "7,530 EloEverything entities, for `rmvalues compare`).")] = "vocab",
    revision: Annotated[str | None, typer.Option(help="Hub revision (branch, tag or sha).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Candidates per forward batch (default: the registry's, else 64).")] = None,
    dtype: Annotated[str | None, typer.Option(
        help="float32 | bfloat16 | float16 (default: float32 on CPU, published dtype on GPU).")] = None,
    attn_implementation: Annotated[str | None, typer.Option(
        help="eager | sdpa | flash_attention_2 (default: transformers' choice).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, ... (default: cuda if present).")] = None,
    verify: Annotated[int, typer.Option(
        help="Re-score N random pairs through the reference path; fail on a mismatch.")] = 0,
    verify_tolerance: Annotated[float | None, typer.Option(
        help="Max |fast - reference| for --verify (default: by dtype, times the scores' std).")] = None,
    date_string: Annotated[str, typer.Option(
        help='"Today Date" for Llama-3.1/3.2 templates (recorded in the manifest).')] = "26 Jul 2024",
    chat_template: Annotated[str | None, typer.Option(
        help="Chat template (.jinja file or text) for tokenizers without one.")] = None,
    paper_compatible: Annotated[bool, typer.Option(
        "--paper-compatible", help="Decode -> template -> re-tokenise as the published scorer did "
        "(double BOS, lossy round trip).")] = False,
    trust_remote_code: Annotated[bool, typer.Option(
        "--trust-remote-code", help="Allow the model repository's own Python code to run.")] = False,
    truncate_candidates: Annotated[bool, typer.Option(
        "--truncate-candidates", help="Cut candidates longer than the model's context instead of "
        "refusing them (counted in the manifest).")] = False,
    gguf_file: Annotated[str | None, typer.Option(
        help="GGUF weights file inside the --model folder (found automatically for asset:NAME and "
             "folders with one .gguf).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    executor: Annotated[str | None, typer.Option(
        help="local | accelerate | slurm | ray: run as a plan of units (see `rmvalues plan`).")] = None,
    executor_config: Annotated[Path | None, typer.Option(
        help="Executor options (YAML/TOML, one section per executor).")] = None,
    shard_size: Annotated[int | None, typer.Option(
        help="With --executor: candidates per unit (default: one unit per prompt).")] = None,
    device_map: Annotated[str | None, typer.Option(
        help="With --executor: 'auto' shards one large model over the node's GPUs.")] = None,
    attribute: Annotated[list[str] | None, typer.Option(
        help="Multi-objective heads (ArmoRM, QRM, URM): also score this attribute as its own run "
             "MODEL@ATTRIBUTE (repeatable; 'all' for every one; one backbone pass each).")] = None,
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
    if executor or executor_config or shard_size or device_map:
        from rmvalues.errors import InputError
        from rmvalues.scale import RunSpec, execute

        if attribute:
            raise InputError("--attribute runs on the plain path; drop --executor and its options.")
        if gguf_file or model.startswith("asset:"):
            raise InputError("GGUF models (--gguf-file, asset:NAME) run on the plain path: drop "
                             "--executor/--shard-size/--device-map")
        if verify:
            raise InputError("--verify runs on the plain path: run `rmvalues score --verify N` "
                             "without --executor afterwards (it resumes every finished shard)")

        spec = RunSpec.build(
            model, prompts, candidates, revision=revision, batch_size=batch_size, dtype=dtype,
            attn_implementation=attn_implementation, device=device, device_map=device_map,
            date_string=date_string, chat_template=chat_template,
            paper_compatible=paper_compatible, trust_remote_code=trust_remote_code,
            shard_size=shard_size)
        typer.echo(execute(spec, out, executor, executor_config).summary)
        return
    if attribute:
        from rmvalues.engines.attributes import score_attributes

        for res in score_attributes(
                model, prompts, candidates, out, attributes="all" if "all" in attribute else attribute,
                revision=revision, batch_size=batch_size, dtype=dtype,
                attn_implementation=attn_implementation, device=device, date_string=date_string,
                chat_template=chat_template, paper_compatible=paper_compatible,
                trust_remote_code=trust_remote_code, verify=verify,
                verify_tolerance=verify_tolerance, progress=not quiet):
            typer.echo(res.summary)
        return
    result = score(
        model, prompts, candidates, out, revision=revision, batch_size=batch_size, dtype=dtype,
        attn_implementation=attn_implementation, device=device, date_string=date_string,
        chat_template=chat_template, paper_compatible=paper_compatible,
        trust_remote_code=trust_remote_code, verify=verify, verify_tolerance=verify_tolerance,
        progress=not quiet, truncate_candidates=truncate_candidates, gguf_file=gguf_file,
    )
    typer.echo(result.summary)
