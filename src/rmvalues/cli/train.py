"""`rmvalues train` and `rmvalues sweep`: Bradley–Terry LoRA training and checkpoint sweeps
(thin layers over :mod:`rmvalues.training`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rmvalues.cli._options import PromptsOption, with_options
from rmvalues.training.config import SweepOptions, TrainConfig, TrainOptions


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


@with_options(TrainConfig, only=TrainConfig.CLI, unset=True)
@with_options(TrainOptions)
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
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any other TrainConfig field, name=value (repeatable).")] = None,
    no_resume: Annotated[bool, typer.Option(
        "--no-resume", help="Refuse to continue an interrupted run in --out.")] = False,
    seeds: Annotated[str | None, typer.Option(
        help="Train once per seed (comma-separated, e.g. 1,2,3) into OUT/seed-N; overrides --seed.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar / progress lines.")] = False,
    **options: Any,
) -> None:
    """Train a Bradley–Terry (or GRM-objective) LoRA reward model (paper defaults, or --preset
    cpu-small); BT runs resume on re-run. Each checkpoint gets a model card and can be audited as it
    is (--model RUN)."""
    from rmvalues.errors import InputError
    from rmvalues.models.checkpoints import local_base
    from rmvalues.training.trainer import train_reward_model

    given = {k: options.pop(k) for k in TrainConfig.CLI}
    opts = TrainOptions(**TrainOptions.pick(options))
    config = TrainConfig.preset(preset).replace(
        **{k: v for k, v in given.items() if v is not None}, **_set(set_))
    base, gguf_file = local_base(base, opts.gguf_file)  # asset:NAME, a bundled name, a GGUF folder
    kwargs = {**opts.train_kwargs(), "gguf_file": gguf_file}
    if opts.objective == "grm":
        from rmvalues.training.grm import train_grm_reward_model

        if seeds or opts.counterbalance:
            raise InputError("--objective grm trains one run: --seeds and --counterbalance work "
                             "with the bt objective.")
        typer.echo(train_grm_reward_model(base, data, out, config, **kwargs).summary)
        return
    report = None
    if opts.counterbalance:
        from rmvalues.training.data import read_records
        from rmvalues.training.seeds import counterbalance_records

        records, source = read_records(data, config=opts.data_config)
        data, report = counterbalance_records(records, opts.counterbalance,
                                              mode=opts.counterbalance_mode, seed=config.seed)
        typer.echo(f"counterbalanced: signal {report.signal_before} -> {report.signal_after} "
                   f"({report.added} pair(s) added)")
    callbacks = []
    if not quiet:
        from rmvalues.runs.progress import training_callback

        callbacks.append(training_callback(f"training {Path(out).name}"))
    kwargs.update(resume=not no_resume, callbacks=callbacks)
    if seeds:
        from rmvalues.training.seeds import train_seeds

        try:
            chosen = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise InputError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 1,2,3.") from None
        results = train_seeds(base, data, out, config, seeds=chosen, **kwargs)
    else:
        results = [train_reward_model(base, data, out, config, **kwargs)]
    if report is not None:  # beside a run that was accepted and finished
        import json

        from rmvalues.io import atomic_write_text

        atomic_write_text(Path(out) / "counterbalance.json",
                          json.dumps({"source": source, **report.to_dict()}, indent=2))
    for result in results:
        typer.echo(result.summary)


@with_options(SweepOptions)
def sweep_command(
    train_dir: Annotated[Path, typer.Argument(help="A `rmvalues train` run folder.")],
    out: Annotated[Path, typer.Option(help="Output folder (unit shards, sweep.parquet).")],
    prompts: PromptsOption = "paper-54",
    candidates: Annotated[str, typer.Option(
        help="vocab | vocab:START-END (ids START to END, both included) | lexicon:NAME | file:PATH.")] = "vocab",
    steps: Annotated[str | None, typer.Option(
        help="Comma-separated steps to score (default: every checkpoint).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    **options: Any,
) -> None:
    """Score every checkpoint of a training run; the table feeds the Fig 4/5 summaries."""
    from rmvalues.errors import InputError
    from rmvalues.training.sweep import sweep

    try:
        chosen = [int(s) for s in steps.split(",")] if steps else None
    except ValueError:
        raise InputError(f"--steps {steps!r}: give comma-separated integers, e.g. 0,64,128.") from None
    result = sweep(train_dir, prompts, candidates, out, steps=chosen, progress=not quiet,
                   **options)
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
