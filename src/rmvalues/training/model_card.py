"""The model card of a trained reward model, written by us (TRL's boilerplate names no base model,
data or objective): base model, data, objective, steps and how to use the checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def model_card(fields: Mapping[str, Any], *, step: int | None, total_steps: int | None) -> str:
    """Markdown for a checkpoint (``step``) or the run folder (``step=None``)."""
    base = fields.get("base", {}) or {}
    config = fields.get("config", {}) or {}
    data = fields.get("data", {}) or {}
    source = base.get("source", "?") + (f" (GGUF file {base['gguf_file']})" if base.get("gguf_file") else "")
    where = f"checkpoint at optimizer step {step} of {total_steps}" if step is not None else \
        f"training run ({total_steps} optimizer steps)"
    lines = [
        "---", "library_name: peft", "tags: [reward-model, rmvalues, lora, bradley-terry]", "---", "",
        f"# Reward model: {where}", "",
        "Trained with rmvalues (`rmvalues train`).", "",
        f"- **Base model**: {source}" + (f" at revision {base['revision']}" if base.get("revision") else ""),
        (f"- **Objective**: Bradley–Terry pairwise loss, -log σ(r(chosen) - r(rejected)); LoRA r = "
        f"{config.get('lora_r')}, α = {config.get('lora_alpha')} on {', '.join(config.get('target_modules', []))}, "
        "score head trained in full"),
        (f"- **Data**: {data.get('source', '?')}: {data.get('valid_pairs', data.get('records', '?'))} pairs "
        f"(content hash {data.get('content_hash', '?')})"),
        (f"- **Optimisation**: lr {config.get('learning_rate')} ({config.get('lr_scheduler_type')}), "
        f"{config.get('per_device_train_batch_size')} x {config.get('gradient_accumulation_steps')} pairs "
        f"per step, max_steps {config.get('max_steps')}, epochs {config.get('num_train_epochs')}, "
        f"seed {config.get('seed')}"),
        f"- **Run key**: {fields.get('run_key', '?')}", "",
        "## Use", "",
        "```bash",
        "rmvalues audit --model THIS_FOLDER          # the answer: which values it prefers",
        "rmvalues score --model THIS_FOLDER --candidates lexicon:big-two-nouns --out scores",
        "rmvalues merge-checkpoint THIS_FOLDER --out merged   # a plain reward-model folder",
        "```", "",
        "The adapter alone is not a full model: rmvalues merges it with the base model in memory.",
    ]
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path, fields: Mapping[str, Any], *, step: int | None,
                     total_steps: int | None) -> Path:
    from rmvalues.io import atomic_write_text

    return atomic_write_text(folder / "README.md", model_card(fields, step=step, total_steps=total_steps))
