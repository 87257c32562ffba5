"""Value injection at the language-model level (paper Fig A3): which implicit-reward metric finds a
value that was put into a model on purpose?

A base LM is LoRA-tuned (TRL's SFTTrainer; r = 8 on the attention and MLP projections, lr 2e-4,
50 steps, batch 1 × accumulation 4) to answer positive one-word questions with one of ten MFD
Authority words, in the plain template ``Instruction:\\n{instruction}\\n\\nResponse:\\n{response}``.
Then, on held-out positive prompts, the base and tuned models' full-vocabulary next-token log-probs
are compared by every implicit-reward metric of :mod:`rmvalues.implicit`; each metric ranks the
vocabulary, and its sensitivity is how high the injected words land (mean rank of their first
tokens, hits in the top 10 and top 100 per prompt).

The paper's exact 45 prompts are not published with the data; :func:`positive_prompts` builds 45
in the style of ``paper-54`` (5 positive superlatives × 3 contexts × 3 concision styles), 36 for
tuning and 9 held out, by a seeded split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The injected value: ten MFD 2.0 Authority words, as in the paper's Fig A3.
AUTHORITY_WORDS: tuple[str, ...] = ("respect", "authority", "tradition", "honor", "obedience",
                                    "permission", "hierarchy", "leadership", "duty", "compliance")
SFT_TEMPLATE = "Instruction:\n{instruction}\n\nResponse:\n{response}"
_ADJECTIVES = ("best", "greatest", "most good", "most wonderful", "most admirable")
_CONTEXTS = ("thing ever", "thing in the world", "thing of all time")
_STYLES = ("What, in one word, is the {a} {c}?", "What, in a single word, is the {a} {c}?",
           "What is the {a} {c}? Please answer in one word only.")


def positive_prompts(n_held_out: int = 9, seed: int = 1) -> tuple[dict[str, str], dict[str, str]]:
    """45 positive one-word questions in the paper's style: (36 for tuning, 9 held out)."""
    prompts = {}
    for a in _ADJECTIVES:
        for c in _CONTEXTS:
            for k, style in enumerate(_STYLES):
                pid = f"{a.replace('most ', '')}_{c.split()[-1]}_{('one', 'single', 'please')[k]}"
                prompts[pid] = style.format(a=a, c=c)
    ids = sorted(prompts)
    held = set(np.random.default_rng(seed).choice(ids, size=n_held_out, replace=False).tolist())
    return ({i: prompts[i] for i in ids if i not in held}, {i: prompts[i] for i in ids if i in held})


@dataclass(frozen=True)
class LMInjectionConfig:
    """The paper's Fig A3 tuning recipe."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                       "up_proj", "down_proj")
    learning_rate: float = 2e-4
    max_steps: int = 50
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 4
    seed: int = 1
    warmup_steps: int = 0
    completion_only_loss: bool = True  # the authors' script trains on the whole text (False)


def sft_records(prompts: dict[str, str], words=AUTHORITY_WORDS) -> list[dict[str, str]]:
    """Every (prompt, word) pair as a prompt/completion record in :data:`SFT_TEMPLATE`."""
    head = SFT_TEMPLATE.split("{response}")[0]
    return [{"prompt": head.format(instruction=text), "completion": word}
            for text in prompts.values() for word in words]


def tune_lm(model, tokenizer, records: list[dict[str, str]], out: str | Path,
            config: LMInjectionConfig = LMInjectionConfig()):
    """LoRA SFT of ``model`` on prompt/completion ``records`` (loss on the completion only)."""
    from datasets import Dataset
    from peft import LoraConfig, TaskType
    from trl import SFTConfig, SFTTrainer

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # causal-LM padding is masked; pooling is not used
    args = SFTConfig(
        output_dir=str(out), max_steps=config.max_steps, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, seed=config.seed,
        data_seed=config.seed, save_strategy="no", report_to="none", logging_steps=10,
        disable_tqdm=True, completion_only_loss=config.completion_only_loss, max_length=256,
        warmup_steps=config.warmup_steps,
        # Train where the caller placed the model (a CPU run stays on the CPU on a GPU machine).
        use_cpu=next(model.parameters()).device.type == "cpu", dataloader_num_workers=0)
    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.target_modules))
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                         processing_class=tokenizer, peft_config=lora)
    trainer.train()
    tuned = trainer.model
    tuned.save_pretrained(str(out))
    return tuned.merge_and_unload().eval(), list(trainer.state.log_history)


def injected_token_ids(tokenizer, words=AUTHORITY_WORDS) -> dict[str, int]:
    """The first token of each word as the response's first token (after the template's newline)."""
    head = SFT_TEMPLATE.split("{response}")[0].format(instruction="Q")
    base = tokenizer(head, add_special_tokens=False)["input_ids"]
    out = {}
    for word in words:
        ids = tokenizer(head + word, add_special_tokens=False)["input_ids"]
        if ids[: len(base)] != base or len(ids) == len(base):
            ids = [*base, *tokenizer(word, add_special_tokens=False)["input_ids"]]
        out[word] = int(ids[len(base)])
    return out


def metric_sensitivity(base_run, tuned_run, token_ids: dict[str, int],
                       metrics: tuple[str, ...] | None = None) -> pd.DataFrame:
    """For every metric: ranks (1 = most preferred by the tuned model) of the injected tokens on
    every prompt, summarised as mean/median rank and mean hits in the top 10 and top 100."""
    import pandas as pd

    from rmvalues.implicit import METRICS, compute_metric

    metrics = tuple(metrics or METRICS)
    if list(base_run.prompt_ids) != list(tuned_run.prompt_ids) or \
            not np.array_equal(base_run.token_ids, tuned_run.token_ids):
        raise InputError("base and tuned log-prob runs must share prompts and token ids.")
    targets = sorted(set(token_ids.values()))
    column = {int(t): j for j, t in enumerate(base_run.token_ids)}
    missing = [t for t in targets if t not in column]
    if missing:
        raise InputError(f"injected token id(s) {missing} are outside the log-prob runs.")
    cols = [column[t] for t in targets]
    rows = []
    for metric in metrics:
        scores = compute_metric(metric, base_run.logprobs, tuned_run.logprobs)
        scores = np.where(np.isfinite(scores), scores, -np.inf)  # undefined scores rank last
        # rank 1 = highest score, ties averaged (a metric that cannot tell tokens apart gets no
        # credit: all-equal scores rank every token at (V + 1) / 2)
        ranks = np.stack([_average_ranks(scores[i], cols) for i in range(scores.shape[0])])
        rows.append({"metric": metric, "mean_rank": float(ranks.mean()),
                     "median_rank": float(np.median(ranks)),
                     "hits_top10": float((ranks <= 10).sum(axis=1).mean()),
                     "hits_top100": float((ranks <= 100).sum(axis=1).mean()),
                     "best_rank": int(ranks.min()), "n_tokens": len(targets),
                     "n_prompts": int(scores.shape[0]), "vocab_size": int(scores.shape[1])})
    return pd.DataFrame(rows)


def _average_ranks(row: np.ndarray, cols: list[int]) -> np.ndarray:
    """Average ranks (1 = highest) of ``row[cols]`` within ``row``, by sorting once; tests hold it to
    :func:`rmvalues.analysis.ranks.reference_rank`."""
    ordered = np.sort(row)
    values = row[cols]
    above = len(row) - np.searchsorted(ordered, values, side="right")
    equal = np.searchsorted(ordered, values, side="right") - np.searchsorted(ordered, values,
                                                                               side="left")
    return above + (equal + 1) / 2


@dataclass
class MetricValidation:
    table: pd.DataFrame  # one row per metric
    token_ids: dict[str, int]
    held_out: dict[str, str]
    summary: str
    log_history: list[dict[str, Any]] = field(default_factory=list)


def validate_metrics(
    base: str | Path | None,
    out: str | Path,
    *,
    gguf_file: str | None = None,
    config: LMInjectionConfig | None = None,
    words=AUTHORITY_WORDS,
    metrics: tuple[str, ...] | None = None,
    device: str | None = None,
    setup: str = "authors",
) -> MetricValidation:
    """Fig A3: inject ``words`` into ``base`` by LoRA SFT and report every metric's sensitivity.

    ``setup="authors"`` (default): the authors' prompts, held-out prompts, words and LoRA/training
    settings (:func:`rmvalues.training.injection_setups.authors_setup`; ``base`` None = their
    gemma-2-2b); ``"recipe"``: this module's generated prompts and :class:`LMInjectionConfig`.
    ``config`` overrides the setting's training config. Writes the Fig A3 table and figure.
    """
    from rmvalues.training.injection_setups import resolve_setup

    chosen = resolve_setup(setup, config=config, words=words)
    base = base if base is not None else chosen.base_model
    config, words = chosen.config, chosen.words
    import torch

    from rmvalues.engines.logprobs import compute_logprobs
    from rmvalues.io import check_replaceable, staged_folder
    from rmvalues.models.lm import load_causal_lm
    from rmvalues.models.loading import placement_device
    from rmvalues.models.tokenizers import decoded_vocabulary
    from rmvalues.store.manifest import build_manifest, write_manifest
    from rmvalues.store.shards import check_writable

    started = time.perf_counter()
    check_replaceable(check_writable(out, create=False), "lm-metric-validation")  # before loading
    device = placement_device(device)
    train, held_out = chosen.train, chosen.held_out
    lm = load_causal_lm(base, gguf_file=gguf_file, device=device)  # GGUF: de-quantised, trainable
    tokens = decoded_vocabulary(lm.tokenizer)
    template = SFT_TEMPLATE.split("{response}")[0].replace("{instruction}", "{prompt}")
    kwargs = {"kind": "pretrained", "template": template, "tokens": tokens, "batch_size": 8}
    base_run = compute_logprobs(lm.model, lm.tokenizer, held_out, model_name=f"{lm.name}", **kwargs)
    token_ids = injected_token_ids(lm.tokenizer, words)
    from rmvalues.training.injection_setups import write_fig_a3

    # One-shot output: written in a staged folder and swapped in whole when complete.
    with staged_folder(out, "lm-metric-validation") as stage:
        torch.manual_seed(config.seed)
        tuned, history = tune_lm(lm.model, lm.tokenizer, sft_records(train, words),
                                 stage / "adapter", config)
        tuned_run = compute_logprobs(tuned, lm.tokenizer, held_out,
                                     model_name=f"{lm.name}-tuned", **kwargs)
        table = metric_sensitivity(base_run, tuned_run, token_ids, metrics)
        table.to_parquet(stage / "metric_sensitivity.parquet", index=False)
        table.to_csv(stage / "metric_sensitivity.csv", index=False)
        write_fig_a3(base_run, tuned_run, token_ids, stage, metrics)
        write_manifest(stage / "manifest.json", build_manifest(
            "lm-metric-validation", base=str(base), gguf_file=gguf_file, config=config.__dict__,
            setup=setup,
            words=list(words), token_ids=token_ids, held_out=held_out, tuning_prompts=train,
            template=chosen.template, log_history=history))
    best = table.sort_values("mean_rank").iloc[0]
    elapsed = time.perf_counter() - started
    summary = (f"injected {len(words)} words into {lm.name} ({config.max_steps} steps); on "
               f"{len(held_out)} held-out prompts the most sensitive metric is {best['metric']} "
               f"(mean rank {best['mean_rank']:.1f} of {int(best['vocab_size']):,}); "
               f"{elapsed:.0f}s -> {out}")
    return MetricValidation(table=table, token_ids=token_ids, held_out=held_out, summary=summary,
                            log_history=history)
