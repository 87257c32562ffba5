"""`rmvalues plan`: the units of a scoring run, what is done, what remains, and the work left."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)


def plan_command(
    model: Annotated[str, typer.Option(help="Registry key, Hugging Face hub id, model folder, "
                                            "`rmvalues train` run or checkpoint-N folder, or "
                                            "asset:NAME (these load the model).")],
    out: Annotated[Path, typer.Option(help="Output directory of the run.")],
    prompts: Annotated[str, typer.Option(help="Prompt set name or YAML file.")] = "paper-54",
    candidates: Annotated[str, typer.Option(
        help="vocab | vocab:START-END (ids START to END, both included) | lexicon:NAME | file:PATH (one text per line).")] = "vocab",
    shard_size: Annotated[int | None, typer.Option(
        help="Candidates per unit (default: one unit per prompt).")] = None,
    revision: Annotated[str | None, typer.Option(help="Hub revision (branch, tag or sha).")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 | bfloat16 | float16.")] = None,
    attn_implementation: Annotated[str | None, typer.Option(help="eager | sdpa | ...")] = None,
    device: Annotated[str | None, typer.Option(
        help="Device the workers use (cpu, cuda); default: this machine's. Keys depend on it: "
        "pass --device cuda when planning GPU work on a CPU-only login node.")] = None,
    device_map: Annotated[str | None, typer.Option(
        help="'auto': shard one large model over the node's GPUs.")] = None,
    date_string: Annotated[str, typer.Option(help='"Today Date" for Llama-3.1/3.2.')] = "26 Jul 2024",
    chat_template: Annotated[str | None, typer.Option(help="Chat template file or text.")] = None,
    paper_compatible: Annotated[bool, typer.Option("--paper-compatible")] = False,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code")] = False,
    gguf_file: Annotated[str | None, typer.Option(help="GGUF weights file inside the --model folder.")] = None,
    units: Annotated[bool, typer.Option("--units", help="List every unit, not just the totals.")] = False,
    estimate: Annotated[bool, typer.Option(
        "--estimate", help="Also load the model, score a short probe (256 candidates, one "
                           "prompt) and estimate the time left on this machine.")] = False,
) -> None:
    """Show a run's units, how many are done and remain, and its token forwards (no weights load)."""
    from rmvalues.models.checkpoints import load_model_ref, resolve_model_ref
    from rmvalues.scale import plan
    from rmvalues.scale.plan import make_plan
    from rmvalues.scale.units import RunSpec

    options = {"shard_size": shard_size, "revision": revision, "dtype": dtype,
                   "attn_implementation": attn_implementation, "device": device, "device_map": device_map,
                   "date_string": date_string, "chat_template": chat_template,
                   "paper_compatible": paper_compatible, "trust_remote_code": trust_remote_code}
    ref = resolve_model_ref(model, gguf_file)
    if ref.kind == "model" and ref.gguf_file is None:
        result = plan(model, prompts, candidates, out, **options)
    else:  # a training checkpoint or a GGUF model: no meta-device probe; load it for its keys
        rm = load_model_ref(ref, device=device, dtype=dtype)
        result = make_plan(RunSpec.build(rm.name, prompts, candidates, **options), out, rm=rm)
    if units:
        frame = result.to_frame()
        for row in frame.itertuples():
            typer.echo(f"{'done' if row.done else 'todo'}  {row.unit:<40} {row.key}  "
                       f"{row.token_forwards:>12,} token forwards")
    typer.echo(result.summary())
    if estimate:
        from rmvalues.estimate import estimate_run

        typer.echo(estimate_run(model, prompts, candidates, result.estimate()["scores_remaining"],
                                revision=revision, dtype=dtype, device=device,
                                chat_template=chat_template, gguf_file=gguf_file,
                                trust_remote_code=trust_remote_code).summary())
