"""Set-ups of the LM-level value injection (Fig A3) and its figure table.

``authors``: the authors' set-up, read from ``fig_a3_setup.toml`` (their gemma-2-2b, template, 36
training questions x 10 Authority words, 9 held-out prompts, LoRA r 8 on all projections with
peft's defaults, lr 2e-4, 50 steps, batch 1 x accumulation 4, 5 warm-up steps, loss on the whole
text). ``recipe``: :mod:`rmvalues.training.lm_injection`'s generated prompts and config.

Fig A3's table: per metric and held-out prompt, the injected words' mean metric score against the
control tokens (every other vocabulary token), as a z-score on the control distribution, so
metrics with different scales share one axis.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.training.lm_injection import LMInjectionConfig

SETUPS = ("authors", "recipe")


@dataclass(frozen=True)
class InjectionSetup:
    name: str
    base_model: str | None
    template: str
    words: tuple[str, ...]
    train: dict[str, str]
    held_out: dict[str, str]
    config: LMInjectionConfig


@cache
def _authors_data() -> dict[str, Any]:
    return tomllib.loads(files("rmvalues.training").joinpath("fig_a3_setup.toml").read_text("utf-8"))


def authors_setup() -> InjectionSetup:
    """The authors' Fig A3 set-up (``fig_a3_setup.toml``)."""
    from rmvalues.training.lm_injection import LMInjectionConfig

    data = _authors_data()
    lora, training = data["lora"], data["training"]
    config = LMInjectionConfig(
        lora_r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
        target_modules=tuple(lora["target_modules"]), learning_rate=training["learning_rate"],
        max_steps=training["max_steps"],
        per_device_train_batch_size=training["per_device_train_batch_size"],
        gradient_accumulation_steps=training["gradient_accumulation_steps"],
        warmup_steps=training["warmup_steps"],
        completion_only_loss=training["completion_only_loss"])
    train = {f"q{i:02d}": q for i, q in enumerate(data["train_questions"], start=1)}
    return InjectionSetup(name="authors", base_model=data["base_model"], template=data["template"],
                          words=tuple(data["injected_words"]), train=train,
                          held_out=dict(data["test_prompts"]), config=config)


def resolve_setup(name: str, *, config: LMInjectionConfig | None = None, words=None
                  ) -> InjectionSetup:
    """The named set-up, with ``config`` (and non-default ``words``) replacing its own."""
    from rmvalues.training.lm_injection import (
        AUTHORITY_WORDS,
        SFT_TEMPLATE,
        LMInjectionConfig,
        positive_prompts,
    )

    if name == "authors":
        setup = authors_setup()
        if setup.template != SFT_TEMPLATE:  # the engine renders SFT_TEMPLATE
            raise InputError("fig_a3_setup.toml's template differs from lm_injection.SFT_TEMPLATE.")
    elif name == "recipe":
        cfg = config or LMInjectionConfig()
        train, held = positive_prompts(seed=cfg.seed)
        setup = InjectionSetup(name="recipe", base_model=None, template=SFT_TEMPLATE,
                               words=AUTHORITY_WORDS, train=train, held_out=held, config=cfg)
    else:
        raise InputError(f"unknown set-up {name!r}; choose one of {', '.join(SETUPS)}.")
    from dataclasses import replace

    if config is not None:
        setup = replace(setup, config=config)
    if words is not None and tuple(words) != AUTHORITY_WORDS:
        setup = replace(setup, words=tuple(words))
    return setup


def injection_contrast(base_run, tuned_run, token_ids: dict[str, int],
                       metrics: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per metric and prompt: injected words' mean score, the controls' mean and SD, and the
    z-score ``(injected - control mean) / control SD`` (controls: every other token)."""
    import pandas as pd

    from rmvalues.implicit import METRICS, compute_metric

    metrics = tuple(metrics or METRICS)
    column = {int(t): j for j, t in enumerate(base_run.token_ids)}
    cols = sorted({column[int(t)] for t in token_ids.values()})
    mask = np.zeros(len(base_run.token_ids), bool)
    mask[cols] = True
    rows = []
    for metric in metrics:
        scores = compute_metric(metric, base_run.logprobs, tuned_run.logprobs).astype(float)
        for i, pid in enumerate(base_run.prompt_ids):
            row = scores[i]
            control = row[~mask & np.isfinite(row)]
            injected = row[mask & np.isfinite(row)]
            sd = float(control.std(ddof=1)) if len(control) > 1 else float("nan")
            inj = float(injected.mean()) if len(injected) else float("nan")
            z = (inj - float(control.mean())) / sd if sd > 0 else float("nan")
            rows.append({"metric": metric, "prompt_id": pid, "injected_mean": inj,
                         "control_mean": float(control.mean()), "control_sd": sd, "z": z,
                         "n_injected": len(injected), "n_control": len(control)})
    return pd.DataFrame(rows)


def write_fig_a3(base_run, tuned_run, token_ids: dict[str, int], out: str | Path,
                 metrics: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Write ``fig_a3.csv`` (:func:`injection_contrast`) and the Fig A3 figure beside it."""
    from rmvalues.io import atomic_path
    from rmvalues.report.metric_validation import figure_a3

    table = injection_contrast(base_run, tuned_run, token_ids, metrics)
    out = Path(out)
    with atomic_path(out / "fig_a3.csv") as tmp:
        table.to_csv(tmp, index=False)
    figure_a3(table, out_dir=out).close()
    return table
