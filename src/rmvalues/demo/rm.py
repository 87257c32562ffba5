"""The demo's reward-model step: the paper's core method on real weights.

Value injection on the bundled SmolLM2-135M-Instruct: a LoRA reward model is trained for a few
dozen steps (``--preset cpu-small``) on preference pairs that favour Communion words over Agency
words (Big Two nouns, paper-style prompts), then ``rmvalues audit`` runs the exhaustive token
search engine on the trained RM and answers "Communion or Agency?" beside the paper's ten RMs.

Step sizes (estimated, not timed: the CPU here is shared by other jobs): one optimizer step of 4
pairs took ~3.5 s on a quiet 2-core machine (the SmolLM2 injection test) and ~10-15 s here on a
busy single core, so 20 steps take ~1-1.5 min on 2 quiet cores; the audit scores 263 words under 8
held-out prompts (4 per framing: ~2.1k candidates), measured at 12-16 candidates/s on one busy core
here (a 4-step run with 16 prompts found Communion 34.5 places above Agency, 16 of 16 prompts, label
shuffle p = 0.04), so roughly 1 min on 2 quiet cores, plus ~30 s of model loading. The training
pairs use 70 % of the words and prompts (the split of ``rmvalues inject``); the audit ranks all 263
words, as a user's audit would, and shows the paper's RMs on the same prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from rmvalues.workflows.audit import AuditResult

SMOLLM2 = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")


def held_out_prompts(split: Any, prompts: Any, n: int) -> dict[str, str]:
    """``n`` of the split's held-out prompts, half of each framing where the set has framings."""
    from rmvalues.prompts import PromptSet, load_prompt_set

    held = split.test_prompts
    if not isinstance(prompts, (str, Path, PromptSet)):  # a plain dict/list has no factors
        return dict(held)
    frame = (prompts if isinstance(prompts, PromptSet) else load_prompt_set(prompts)).to_frame()
    if "framing" not in frame.columns:
        return dict(list(held.items())[:n])
    framing = frame.set_index("prompt_id")["framing"]
    chosen = []
    for level in dict.fromkeys(framing[list(held)]):
        chosen += [p for p in held if framing[p] == level][: max(1, n // 2)]
    return {p: held[p] for p in chosen}


def run_rm_demo(out: Path, console: Console, *, steps: int = 20, base: str | Path | None = None,
                gguf_file: str | None = None, prompts: Any = "paper-54", audit_prompts: int = 8,
                null_draws: int = 199, n_boot: int = 1000) -> AuditResult:
    """Train (``steps`` optimizer steps) and audit an injected RM under ``out/rm``."""
    from rmvalues.runs.progress import training_callback
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.injection import injection_records, injection_split
    from rmvalues.training.trainer import train_reward_model
    from rmvalues.workflows.audit import audit

    if base is None:
        from rmvalues.assets import asset_path

        base, gguf_file = asset_path(SMOLLM2[0]), SMOLLM2[1]
    split = injection_split("big-two-nouns", "Communion", "Agency", prompts, seed=1)
    config = TrainConfig.preset("cpu-small").replace(max_steps=steps, checkpoint_every=0)
    records = injection_records(split, steps * config.per_device_train_batch_size, seed=1)
    console.print(f"Training a LoRA reward model on {Path(str(base)).name} for {steps} steps: "
                  f"{len(records)} pairs preferring Communion over Agency words "
                  f"({len(split.train_a)} + {len(split.train_b)} training words) ...", highlight=False)
    train_dir = out / "rm" / "train"
    trained = train_reward_model(base, records, train_dir, config, gguf_file=gguf_file,
                                 device="cpu", callbacks=[training_callback("training")])
    console.print(trained.summary, highlight=False, soft_wrap=True)
    console.print("Auditing it: rmvalues audit --model " + str(train_dir), highlight=False)
    # Held-out prompts (paper-54 ids and texts: the released RMs are shown on the same ones)
    result = audit([train_dir], lexicons=["big-two-nouns"],
                   prompts=held_out_prompts(split, prompts, audit_prompts),
                   out=out / "rm" / "audit",
                   null_draws=null_draws, n_boot=n_boot, device="cpu", progress=True)
    text = result.report.read_text("utf-8") if result.report else ""
    console.print(text.split("\n## Details")[0].split("How to read this")[0].rstrip(),
                  highlight=False, markup=False, soft_wrap=True)
    console.print(f"Audit report: {result.report}", highlight=False, soft_wrap=True)
    return result
