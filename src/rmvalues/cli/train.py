"""`rmvalues train` and `rmvalues sweep`: Bradley–Terry LoRA training and checkpoint sweeps
(thin layers over :mod:`rmvalues.training`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("sweep")(sweep_command)
    app.command("inject")(inject_command)
    app.command("validate-metrics")(validate_metrics_command)


def _set(option: list[str] | None) -> dict[str, object]:
    """``--set name=value`` pairs, values parsed as JSON where they parse (numbers, true, lists)."""
    import json

    from rmvalues.errors import InputError

    out: dict[str, object] = {}
    for item in option or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: write name=value (e.g. --set learning_rate=2e-5).")
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def train_command(
    base: Annotated[str, typer.Option(help="Base model: hub id, registry key, model folder, or "
                                           "asset:NAME (a bundled small model, GGUF found).")],
    data: Annotated[str, typer.Option(help=(
        "Preference data: a hub dataset id, or a JSONL/JSON/Parquet file of records, each "
        '{"prompt": "...", "chosen": "...", "rejected": "..."} or {"chosen": [messages], '
        '"rejected": [messages]} with messages {"role": "user"|"assistant", "content": "..."} '
        "(example: examples/preferences.jsonl).")
    )],
    out: Annotated[Path, typer.Option(help="Run folder (checkpoint-N folders and manifest).")],
    preset: Annotated[str, typer.Option(
        help="paper (the paper's recipe: lr 1e-5, 2 epochs, 16 pairs per step) | cpu-small (lr "
             "1e-3, 60 steps of 4 pairs, LoRA r 8, no gradient checkpointing, a log line per "
             "step). Options below override it.")] = "paper",
    every: Annotated[int | None, typer.Option(
        help="Keep every N-th pair (the paper's step sizes 64/32/16/8).")] = None,
    size: Annotated[int | None, typer.Option(help="Keep a seeded random subset of this size.")] = None,
    data_config: Annotated[str | None, typer.Option(
        help="Hub dataset config (default: 'all' for llm-blender/Unified-Feedback).")] = None,
    gguf_file: Annotated[str | None, typer.Option(help="GGUF weights file inside --base.")] = None,
    chat_template: Annotated[str | None, typer.Option(
        help="Chat template (.jinja file or text) for tokenizers without one.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        help="Also save every N optimizer steps (step 0 and powers of two always).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps (-1: the epochs).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Training epochs (paper: 2).")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate (paper: 1e-5).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Drop pairs longer than this (tokens).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (head init, data order, subsampling).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: transformers').")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any other TrainConfig field, name=value (repeatable).")] = None,
    no_resume: Annotated[bool, typer.Option(
        "--no-resume", help="Refuse to continue an interrupted run in --out.")] = False,
    seeds: Annotated[str | None, typer.Option(
        help="Train once per seed (comma-separated, e.g. 1,2,3) into OUT/seed-N; overrides --seed.")] = None,
    counterbalance: Annotated[str | None, typer.Option(
        help="Lexicon whose Agency/Communion words are balanced in the data before training (see "
             "--counterbalance-mode); the report is written to OUT/counterbalance.json.")] = None,
    counterbalance_mode: Annotated[str, typer.Option(
        help="swap (add each pair with Agency<->Communion words swapped) | duplicate (repeat "
             "minority-direction pairs).")] = "swap",
    objective: Annotated[str, typer.Option(
        help="bt: Bradley-Terry; grm: BT + text-generation regulariser with GRM's value head "
             "(the paper's method = GRM; weight 0.01, beta 0.1; no resume).")] = "bt",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar / progress lines.")] = False,
) -> None:
    """Train a Bradley–Terry (or GRM-objective) LoRA reward model (paper defaults, or --preset
    cpu-small); BT runs resume on re-run. Each checkpoint gets a model card and can be audited as it
    is (--model RUN)."""
    from rmvalues.errors import InputError
    from rmvalues.models.checkpoints import local_base
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.trainer import train_reward_model

    given = {"checkpoint_every": checkpoint_every, "max_steps": max_steps, "num_train_epochs": epochs,
             "learning_rate": learning_rate, "max_length": max_length, "seed": seed}
    config = TrainConfig.preset(preset).replace(
        **{k: v for k, v in given.items() if v is not None}, **_set(set_))
    base, gguf_file = local_base(base, gguf_file)  # asset:NAME, a bundled name, a GGUF folder
    if objective not in ("bt", "grm"):
        raise InputError(f"--objective {objective!r}: choose bt or grm.")
    if objective == "grm":
        from rmvalues.training.grm import train_grm_reward_model

        if seeds or counterbalance:
            raise InputError("--objective grm trains one run: --seeds and --counterbalance work "
                             "with the bt objective.")
        result = train_grm_reward_model(base, data, out, config, every=every, size=size,
                                        data_config=data_config, gguf_file=gguf_file,
                                        chat_template=chat_template, device=device)
        typer.echo(result.summary)
        return
    if counterbalance:
        import json

        from rmvalues.io import atomic_write_text
        from rmvalues.store.shards import check_writable
        from rmvalues.training.data import read_records
        from rmvalues.training.seeds import counterbalance_records

        records, source = read_records(data, config=data_config)
        data, report = counterbalance_records(records, counterbalance, mode=counterbalance_mode,
                                              seed=config.seed)
        atomic_write_text(check_writable(out) / "counterbalance.json",
                          json.dumps({"source": source, **report.to_dict()}, indent=2))
        typer.echo(f"counterbalanced: signal {report.signal_before} -> {report.signal_after} "
                   f"({report.added} pair(s) added)")
    callbacks = []
    if not quiet:
        from rmvalues.runs.progress import training_callback

        callbacks.append(training_callback(f"training {Path(out).name}"))
    kwargs = {"every": every, "size": size, "data_config": data_config, "gguf_file": gguf_file,
              "chat_template": chat_template, "device": device, "resume": not no_resume,
              "callbacks": callbacks}
    if seeds:
        from rmvalues.training.seeds import train_seeds

        try:
            chosen = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise InputError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 1,2,3.") from None
        for result in train_seeds(base, data, out, config, seeds=chosen, **kwargs):
            typer.echo(result.summary)
        return
    result = train_reward_model(base, data, out, config, **kwargs)
    typer.echo(result.summary)


def sweep_command(
    train_dir: Annotated[Path, typer.Argument(help="A `rmvalues train` run folder.")],
    out: Annotated[Path, typer.Option(help="Output folder (step-N tables, sweep.parquet).")],
    prompts: Annotated[str, typer.Option(help="Prompt set name or YAML file.")] = "paper-54",
    candidates: Annotated[str, typer.Option(
        help="vocab | vocab:START-END (ids START to END, both included) | lexicon:NAME | file:PATH.")] = "vocab",
    steps: Annotated[str | None, typer.Option(
        help="Comma-separated steps to score (default: every checkpoint).")] = None,
    batch_size: Annotated[int, typer.Option(help="Candidates per forward batch.")] = 64,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda if present).")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 | bfloat16 | float16.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Score every checkpoint of a training run; the table feeds the Fig 4/5 summaries."""
    from rmvalues.errors import InputError
    from rmvalues.training.sweep import sweep

    try:
        chosen = [int(s) for s in steps.split(",")] if steps else None
    except ValueError:
        raise InputError(f"--steps {steps!r}: give comma-separated integers, e.g. 0,64,128.") from None
    result = sweep(train_dir, prompts, candidates, out, steps=chosen, batch_size=batch_size,
                   device=device, dtype=dtype, progress=not quiet)
    typer.echo(result.summary)


def inject_command(
    base: Annotated[str, typer.Option(help="Base model: hub id, registry key or model folder.")],
    out: Annotated[Path, typer.Option(help="Output folder (train/, sweep/, injection tables).")],
    lexicon: Annotated[str, typer.Option(help="Lexicon name or file.")] = "big-two-nouns",
    category_a: Annotated[str, typer.Option(help="Injected (chosen) category.")] = "Communion",
    category_b: Annotated[str, typer.Option(help="Rejected category.")] = "Agency",
    prompts: Annotated[str, typer.Option(help="Prompt set name or YAML file.")] = "paper-54",
    pairs: Annotated[int, typer.Option(help="Synthetic preference pairs.")] = 400,
    max_words: Annotated[int | None, typer.Option(help="Cap words per category.")] = None,
    gguf_file: Annotated[str | None, typer.Option(help="GGUF weights file inside --base.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="TrainConfig field, name=value (repeatable).")] = None,
) -> None:
    """RM-level value injection: train A-over-B preferences, test the audit finds them held out."""
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.injection import run_injection

    result = run_injection(base, out, lexicon=lexicon, category_a=category_a,
                           category_b=category_b, prompts=prompts, n_pairs=pairs,
                           config=TrainConfig().replace(**_set(set_)), max_words=max_words,
                           gguf_file=gguf_file, device=device)
    typer.echo(result.summary)


def validate_metrics_command(
    out: Annotated[Path, typer.Option(help="Output folder (sensitivity table, Fig A3, adapter).")],
    base: Annotated[str | None, typer.Option(
        help="Base causal LM: hub id or model folder (default with --setup authors: their "
             "google/gemma-2-2b).")] = None,
    setup: Annotated[str, typer.Option(
        help="authors: their prompts, words, template and LoRA/training settings (Fig A3); "
             "recipe: generated prompts and this package's recipe.")] = "authors",
    gguf_file: Annotated[str | None, typer.Option(help="GGUF weights file inside --base.")] = None,
    steps: Annotated[int | None, typer.Option(help="LoRA SFT steps (default: the set-up's, 50).")]
    = None,
    learning_rate: Annotated[float | None, typer.Option(
        help="LoRA SFT learning rate (default: the set-up's, 2e-4).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
) -> None:
    """LM-level value injection (Fig A3): each implicit-reward metric's sensitivity."""
    from dataclasses import replace

    from rmvalues.training.injection_setups import resolve_setup
    from rmvalues.training.lm_injection import validate_metrics

    config = resolve_setup(setup).config
    if steps is not None:
        config = replace(config, max_steps=steps)
    if learning_rate is not None:
        config = replace(config, learning_rate=learning_rate)
    result = validate_metrics(base, out, gguf_file=gguf_file, device=device, config=config,
                              setup=setup)
    typer.echo(result.table.to_string(index=False))
    typer.echo(result.summary)
