"""One configuration for Bradley–Terry LoRA reward-model training, holding the paper's defaults.

Paper §5 / reference training code: LoRA r = 32, α = 64, dropout 0.05 on the q/k/v/o attention
projections, sequence-classification task with the score head trained in full and saved with the
adapter (``modules_to_save``); AdamW at lr 1e-5 with a cosine schedule and 3 % warm-up, gradient
norm clipped at 5.0, 4 pairs per device × 4 accumulation steps (16 per update), 2 epochs, bf16 where
the hardware has it, seed 1, pairs longer than 1024 tokens dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rmvalues.errors import InputError
from rmvalues.runs.options import Options, about

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig
    from trl import RewardConfig

#: The pad token added to tokenizers whose pad is missing or equals EOS.
DEFAULT_PAD_TOKEN = "<|pad|>"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; ``TrainConfig()`` is the paper's recipe."""

    # LoRA
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    modules_to_save: tuple[str, ...] = ("score",)
    # optimisation
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    max_grad_norm: float = 5.0
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    num_train_epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides the epochs
    bf16: bool | Literal["auto"] = "auto"
    seed: int = 1
    max_length: int = 1024
    # checkpoints: step 0, powers of two, every N steps (0 = off), and the last step
    checkpoint_powers_of_two: bool = True
    checkpoint_every: int = 0
    checkpoint_last: bool = True
    # tokenizer / data
    pad_token: str = DEFAULT_PAD_TOKEN
    logging_steps: int = 10
    extra: dict[str, Any] = field(default_factory=dict)  # passed to trl.RewardConfig as is

    def __post_init__(self) -> None:
        checks = [
            (self.lora_r >= 1, "lora_r must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.per_device_train_batch_size >= 1, "per_device_train_batch_size must be >= 1"),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be >= 1"),
            (self.num_train_epochs > 0 or self.max_steps > 0, "train for > 0 epochs or max_steps"),
            (self.max_length >= 2, "max_length must be >= 2"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0 (0 = off)"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"training config: {message}.")

    @classmethod
    def preset(cls, name: str) -> TrainConfig:
        """A named recipe: ``paper`` (the defaults) or ``cpu-small`` (see :data:`PRESETS`)."""
        if name not in PRESETS:
            raise InputError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls().replace(**PRESETS[name])

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; unknown names are an error naming the valid ones."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown training setting(s) {unknown}; known: {sorted(known)}.")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        data["modules_to_save"] = list(self.modules_to_save)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        for key in ("target_modules", "modules_to_save"):
            if key in data:
                data[key] = tuple(data[key])
        return cls().replace(**data)

    def use_bf16(self) -> bool:
        """bf16 when asked, or ("auto") when a CUDA device supports it."""
        if self.bf16 != "auto":
            return bool(self.bf16)
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())

    def lora_config(self) -> LoraConfig:
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType.SEQ_CLS, r=self.lora_r, lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout, target_modules=list(self.target_modules),
            modules_to_save=list(self.modules_to_save), bias="none",
        )

    def reward_config(self, output_dir: str | Path, *, use_cpu: bool = False) -> RewardConfig:
        """TRL's RewardConfig; saving is driven by our checkpoint schedule, not by TRL's."""
        from trl import RewardConfig

        return RewardConfig(
            output_dir=str(output_dir),
            learning_rate=self.learning_rate,
            lr_scheduler_type=self.lr_scheduler_type,
            warmup_steps=self.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
            max_grad_norm=self.max_grad_norm,
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps,
            bf16=self.use_bf16(),
            seed=self.seed,
            data_seed=self.seed,
            max_length=self.max_length,
            save_strategy="no",  # our callback asks for saves at the schedule's steps
            logging_steps=self.logging_steps,
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            disable_dropout=False,  # TRL's default would silence the LoRA dropout of the recipe
            dataloader_num_workers=0,
            use_cpu=use_cpu,
            **self.extra,
        )


#: Named recipes. ``cpu-small``: a short LoRA run a laptop finishes in minutes — a learning rate
#: that moves a small model in ~60 steps (the paper's 1e-5 does nothing that fast), one pair batch
#: of 4 per step, a smaller adapter, a log line every step, and no gradient checkpointing (it only
#: trades compute for memory a small model does not need).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu-small": {"learning_rate": 1e-3, "per_device_train_batch_size": 4,
                  "gradient_accumulation_steps": 1, "max_steps": 60, "lora_r": 8, "lora_alpha": 16,
                  "max_length": 256, "logging_steps": 1, "checkpoint_every": 30,
                  "extra": {"gradient_checkpointing": False}},
}


@dataclass(frozen=True, kw_only=True)
class SweepOptions(Options):
    """How a checkpoint sweep loads and runs each checkpoint (``rmvalues sweep``,
    :func:`rmvalues.training.sweep.sweep`)."""

    batch_size: int = field(default=64, metadata=about("Candidates per forward batch."))
    device: str | None = field(default=None, metadata=about(
        "cpu, cuda, ... (default: cuda if present)."))
    dtype: str | None = field(default=None, metadata=about("float32 | bfloat16 | float16."))
    name: str | None = field(default=None, metadata=about(
        "Model name in the table (default: the run folder's name).", cli=False))

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1 (got {self.batch_size}).")
