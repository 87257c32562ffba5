"""The demo's reward-model step: the paper's core method on real weights.

Value injection on the bundled SmolLM2-135M-Instruct: a LoRA reward model is trained for a few
dozen steps (``--preset cpu-small``) on preference pairs that favour Communion words over Agency
words (Big Two nouns, paper-style prompts), then ``rmvalues audit`` runs the exhaustive token
search engine on the trained RM and answers "Communion or Agency?" beside the paper's ten RMs.

Step sizes on a 2-core CPU (from the SmolLM2 injection test: ~3.5 s per optimizer step of 4 pairs):
30 steps ≈ 1.5–2 min. The training pairs use 70 % of the words and prompts (the split of
``rmvalues inject``); the audit runs on the 16 held-out prompts (263 words × 16 ≈ 4.2k candidates;
measured 12 candidates/s on one busy shared core here, so roughly 1–2 min on a quiet 2-core
machine) and ranks all 263 words, as a user's audit would; the paper's RMs are shown on the same
16 prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from rmvalues.audit import AuditResult

SMOLLM2 = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")


def run_rm_demo(out: Path, console: Console, *, steps: int = 30, base: str | Path | None = None,
                gguf_file: str | None = None, prompts: Any = "paper-54", null_draws: int = 199,
                n_boot: int = 1000) -> AuditResult:
    """Train (``steps`` optimizer steps) and audit an injected RM under ``out/rm``."""
    from rmvalues.audit import audit
    from rmvalues.progress import training_callback
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.injection import injection_records, injection_split
    from rmvalues.training.trainer import train_reward_model

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
    # The held-out prompts (a subset of the paper's 54: the released RMs are shown on the same ones)
    result = audit([train_dir], lexicons=["big-two-nouns"], prompts=split.test_prompts,
                   out=out / "rm" / "audit",
                   null_draws=null_draws, n_boot=n_boot, device="cpu", progress=True)
    text = result.report.read_text("utf-8") if result.report else ""
    console.print(text.split("\n## Details")[0].split("How to read this")[0].rstrip(),
                  highlight=False, markup=False, soft_wrap=True)
    console.print(f"Audit report: {result.report}", highlight=False, soft_wrap=True)
    return result
