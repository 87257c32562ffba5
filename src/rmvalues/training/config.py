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
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rmvalues.errors import InputError
from rmvalues.runs.options import Options, about
from rmvalues.training.schedule import CheckpointSchedule

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig
    from trl import RewardConfig

#: The pad token added to tokenizers whose pad is missing or equals EOS.
DEFAULT_PAD_TOKEN = "<|pad|>"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; ``TrainConfig()`` is the paper's recipe."""

    # LoRA
    lora_r: int = field(default=32, metadata=about("LoRA rank."))
    lora_alpha: int = field(default=64, metadata=about("LoRA alpha (scale = alpha / r)."))
    lora_dropout: float = field(default=0.05, metadata=about("Dropout on the LoRA inputs."))
    target_modules: tuple[str, ...] = field(default=("q_proj", "k_proj", "v_proj", "o_proj"),
                                            metadata=about("Modules that get LoRA adapters."))
    modules_to_save: tuple[str, ...] = field(default=("score",), metadata=about(
        "Modules trained in full and saved with the adapter (the score head)."))
    # optimisation
    learning_rate: float = field(default=1e-5, metadata=about(
        "Peak learning rate (paper: 1e-5)."))
    lr_scheduler_type: str = field(default="cosine", metadata=about("Learning-rate schedule."))
    warmup_ratio: float = field(default=0.03, metadata=about("Warm-up share of the steps."))
    max_grad_norm: float = field(default=5.0, metadata=about("Gradient-norm clip."))
    per_device_train_batch_size: int = field(default=4, metadata=about("Pairs per device step."))
    gradient_accumulation_steps: int = field(default=4, metadata=about(
        "Device steps per optimizer step."))
    num_train_epochs: float = field(default=2.0, metadata=about(
        "Training epochs (paper: 2).", flag="--epochs"))
    max_steps: int = field(default=-1, metadata=about(
        "Stop after this many steps (-1: the epochs)."))  # > 0 overrides the epochs
    bf16: bool | Literal["auto"] = field(default="auto", metadata=about(
        "bf16 training: true, false, or auto (where the GPU has it)."))
    seed: int = field(default=1, metadata=about("Seed (head init, data order, subsampling)."))
    max_length: int = field(default=1024, metadata=about("Drop pairs longer than this (tokens)."))
    # checkpoints: step 0, powers of two, every N steps (0 = off), and the last step
    checkpoint_powers_of_two: bool = field(default=True, metadata=about(
        "Save at powers of two."))
    checkpoint_every: int = field(default=0, metadata=about(
        "Also save every N optimizer steps (step 0 and powers of two always)."))
    checkpoint_last: bool = field(default=True, metadata=about("Save the last step."))
    # tokenizer / data
    pad_token: str = field(default=DEFAULT_PAD_TOKEN, metadata=about(
        "Pad token added to tokenizers without one (never EOS)."))
    logging_steps: int = field(default=10, metadata=about("Log every N steps."))
    extra: dict[str, Any] = field(default_factory=dict, metadata=about(
        "More trl.RewardConfig arguments, passed as they are."))

    #: The fields ``rmvalues train`` offers as options of their own (the rest go through --set);
    #: unset, they keep the preset's value.
    CLI: ClassVar[tuple[str, ...]] = ("checkpoint_every", "max_steps", "num_train_epochs",
                                      "learning_rate", "max_length", "seed")

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

    def checkpoint_schedule(self) -> CheckpointSchedule:
        """The steps to save at, from the ``checkpoint_*`` settings (every objective uses it)."""
        return CheckpointSchedule(powers_of_two=self.checkpoint_powers_of_two,
                                  every=self.checkpoint_every,
                                  include_last=self.checkpoint_last)

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
class TrainOptions(Options):
    """How ``rmvalues train`` sets a run up around its :class:`TrainConfig` recipe: the data
    selection, the base model's files, the device and the objective."""

    every: int | None = field(default=None, metadata=about(
        "Keep every N-th pair (the paper's step sizes 64/32/16/8)."))
    size: int | None = field(default=None, metadata=about(
        "Keep a seeded random subset of this size."))
    data_config: str | None = field(default=None, metadata=about(
        "Hub dataset config (default: 'all' for llm-blender/Unified-Feedback)."))
    gguf_file: str | None = field(default=None, metadata=about("GGUF weights file inside --base."))
    chat_template: str | None = field(default=None, metadata=about(
        "Chat template (.jinja file or text) for tokenizers without one."))
    device: str | None = field(default=None, metadata=about(
        "cpu, cuda, ... (default: transformers')."))
    counterbalance: str | None = field(default=None, metadata=about(
        "Lexicon whose Agency/Communion words are balanced in the data before training (see "
        "--counterbalance-mode); the report is written to OUT/counterbalance.json."))
    counterbalance_mode: str = field(default="swap", metadata=about(
        "swap (add each pair with Agency<->Communion words swapped) | duplicate (repeat "
        "minority-direction pairs)."))
    objective: str = field(default="bt", metadata=about(
        "bt: Bradley-Terry; grm: BT + text-generation regulariser with GRM's value head "
        "(the paper's method = GRM; weight 0.01, beta 0.1; no resume)."))

    def __post_init__(self) -> None:
        if self.objective not in ("bt", "grm"):
            raise InputError(f"--objective {self.objective!r}: choose bt or grm.")

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~rmvalues.training.trainer.train_reward_model` (and of
        the GRM trainer, which takes the same)."""
        return {"every": self.every, "size": self.size, "data_config": self.data_config,
                "gguf_file": self.gguf_file, "chat_template": self.chat_template,
                "device": self.device}


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
