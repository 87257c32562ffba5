"""Bradley–Terry LoRA training with TRL's RewardTrainer and self-sufficient, resumable checkpoints.

The run folder holds ``checkpoint-N`` for every scheduled step N (step 0 is written before the first
update). Each checkpoint has the LoRA adapter with the score head (``modules_to_save``), the
tokenizer (with its pad token), the embedding rows the pad token added, and ``manifest.json`` naming
the base model, the pad-token record, the settings and the data; ``manifest.json`` is written last,
so a checkpoint without it is incomplete and ignored. Checkpoints after step 0 also hold the
optimizer, scheduler and RNG state, so ``train_reward_model`` on the same folder resumes from the
last one after an interruption.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError, ModelError
from rmvalues.training.config import TrainConfig
from rmvalues.training.model_card import write_model_card
from rmvalues.training.schedule import CheckpointSchedule

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from rmvalues.training.data import PreferenceData

log = logging.getLogger("rmvalues.training")

CHECKPOINT_PREFIX = "checkpoint-"
MANIFEST_NAME = "manifest.json"
ADDED_EMBEDDINGS = "added_embeddings.safetensors"
_CHECKPOINT = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


@dataclass
class TrainResult:
    """A finished (or resumed-to-finish) run: where it is and what it wrote."""

    out: Path
    steps: list[int]
    total_steps: int
    resumed_from: int | None
    summary: str
    log_history: list[dict[str, Any]] = field(default_factory=list)
    model: Any = field(default=None, repr=False)  # the trained PeftModel, in memory
    tokenizer: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class BaseModel:
    """Where the base model comes from (recorded in every checkpoint, replayed by the sweep)."""

    source: str
    gguf_file: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "gguf_file": self.gguf_file, "revision": self.revision,
                "trust_remote_code": self.trust_remote_code, "chat_template": self.chat_template}


def load_base(base: BaseModel, *, dtype: Any = None, device: str | None = None,
              tokenizer: PreTrainedTokenizerBase | None = None,
              ) -> tuple[nn.Module, PreTrainedTokenizerBase, Path]:
    """``AutoModelForSequenceClassification`` (one label) + tokenizer + local folder of ``base``.

    Loaded by the scoring loader's steps (:func:`~rmvalues.models.loading.resolve_model` and
    :func:`~rmvalues.models.loading.load_weights`: hub snapshot or local folder, safetensors or
    GGUF, remote code only when ``base`` trusts it), so training and scoring read the same files.
    The score head is new (seeded by the caller); every other weight must be in the checkpoint.
    ``dtype`` defaults to float32 on any device (training precision, not scoring's "auto").
    """
    from transformers import AutoModelForSequenceClassification

    from rmvalues.models.loading import load_weights, resolve_model

    source = resolve_model(base.source, revision=base.revision, dtype=dtype or "float32",
                           device=device, gguf_file=base.gguf_file,
                           trust_remote_code=base.trust_remote_code)
    model = load_weights(AutoModelForSequenceClassification, source,
                         what="the sequence-classification model",
                         trust_remote_code=base.trust_remote_code, gguf_file=base.gguf_file,
                         new_weights=("score.",), num_labels=1)
    if tokenizer is None:
        tokenizer = _base_tokenizer(base, source.local_dir)
    if device:
        model.to(device)
    return model, tokenizer, source.local_dir


def load_base_lm(base: BaseModel, *, dtype: Any, device: str | None = None) -> nn.Module:
    """``base`` as ``AutoModelForCausalLM`` (the GRM objective's body and LM head), on the CPU.

    The same loader steps as :func:`load_base`; ``dtype`` is a name of the loaders' vocabulary or
    a torch dtype, resolved against ``device``.
    """
    from transformers import AutoModelForCausalLM

    from rmvalues.models.loading import load_weights, resolve_model

    source = resolve_model(base.source, revision=base.revision, dtype=dtype, device=device,
                           gguf_file=base.gguf_file, trust_remote_code=base.trust_remote_code)
    return load_weights(AutoModelForCausalLM, source, what="the causal LM",
                        trust_remote_code=base.trust_remote_code, gguf_file=base.gguf_file)


def clear_gguf_quantization(model: nn.Module) -> None:
    """GGUF weights are dequantised to float on load, yet transformers still flags the model as
    quantised (and the Trainer then refuses to train it); the tensors are plain, so drop the flags."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def pin_base(base: BaseModel) -> BaseModel:
    """``base`` with a hub id's resolved commit sha, so sweeps reload exactly what was trained."""
    from dataclasses import replace

    from rmvalues.models.loading import resolve_source
    from rmvalues.models.registry import find_model

    _, resolved = resolve_source(base.source, base.revision, find_model(base.source))
    return replace(base, revision=resolved) if resolved and not base.revision else base


def load_base_tokenizer(base: BaseModel) -> PreTrainedTokenizerBase:
    """The base model's tokenizer (with ``base.chat_template`` applied), without the weights."""
    from rmvalues.models.loading import resolve_source
    from rmvalues.models.registry import find_model

    local_dir, _ = resolve_source(base.source, base.revision, find_model(base.source))
    return _base_tokenizer(base, local_dir)


def _base_tokenizer(base: BaseModel, local_dir: Path) -> PreTrainedTokenizerBase:
    """The tokenizer in ``local_dir`` (the GGUF file's, if any) with ``base.chat_template``."""
    from rmvalues.models.tokenizers import load_tokenizer

    return load_tokenizer(local_dir, chat_template=base.chat_template,
                          trust_remote_code=base.trust_remote_code, gguf_file=base.gguf_file)


def checkpoint_dirs(out: str | Path, *, complete: bool = True) -> dict[int, Path]:
    """``{step: folder}`` of the run's checkpoints (complete ones: their manifest exists)."""
    out = Path(out)
    found = {}
    for child in out.glob(f"{CHECKPOINT_PREFIX}*") if out.is_dir() else []:
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and (not complete or (child / MANIFEST_NAME).is_file()):
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def _resumable(out: Path) -> tuple[int, Path] | None:
    """The last complete checkpoint that also holds the trainer state (steps > 0)."""
    for step, folder in reversed(checkpoint_dirs(out).items()):
        if step > 0 and (folder / "trainer_state.json").is_file():
            return step, folder
    return None


def save_added_embeddings(model: nn.Module, pad: Mapping[str, Any], folder: Path) -> None:
    """The embedding rows the pad policy added (a few rows, not the whole matrix)."""
    start, stop = pad["vocab_rows_before"], pad["vocab_rows_after"]
    if stop <= start:
        return
    from safetensors.torch import save_file

    rows = model.get_input_embeddings().weight[start:stop].detach().float().cpu().contiguous()
    save_file({"added_rows": rows}, str(folder / ADDED_EMBEDDINGS), metadata={"start": str(start)})


def load_added_embeddings(model: nn.Module, folder: Path) -> None:
    path = folder / ADDED_EMBEDDINGS
    if not path.is_file():
        return
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        rows = handle.get_tensor("added_rows")
        start = int(handle.metadata()["start"])
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        weight[start:start + rows.shape[0]] = rows.to(weight.dtype).to(weight.device)


class _CheckpointCallback:
    """Saves at the schedule's steps (TRL's own save strategy is off) and completes each folder."""

    def __init__(self, out: Path, schedule: CheckpointSchedule, fields: dict[str, Any],
                 tokenizer: PreTrainedTokenizerBase, pad: dict[str, Any],
                 interrupt_after: int | None = None) -> None:
        self.out, self.schedule, self.fields = out, schedule, fields
        self.tokenizer, self.pad = tokenizer, pad
        self.total: int | None = None
        self.interrupt_after = interrupt_after

    def as_trainer_callback(self):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                outer.total = state.max_steps
                if state.global_step == 0:
                    folder = outer.out / f"{CHECKPOINT_PREFIX}0"
                    folder.mkdir(parents=True, exist_ok=True)
                    model.save_pretrained(str(folder))
                    outer.tokenizer.save_pretrained(str(folder))
                    outer.complete(folder, 0, model)
                return control

            def on_step_end(self, args, state, control, **kwargs):
                if outer.schedule.wants(state.global_step, outer.total):
                    control.should_save = True
                return control

            def on_save(self, args, state, control, model=None, **kwargs):
                folder = outer.out / f"{CHECKPOINT_PREFIX}{state.global_step}"
                outer.complete(folder, state.global_step, model)
                if outer.interrupt_after is not None and state.global_step >= outer.interrupt_after:
                    raise TrainingInterrupted(state.global_step)
                return control

        return Callback()

    def complete(self, folder: Path, step: int, model: nn.Module) -> None:
        from rmvalues.store.manifest import build_manifest, write_manifest

        save_added_embeddings(model, self.pad, folder)
        write_manifest(folder / MANIFEST_NAME, build_manifest(
            "rm-train-checkpoint", step=step, total_steps=self.total, **self.fields))
        write_model_card(folder, self.fields, step=step, total_steps=self.total)


class TrainingInterrupted(RuntimeError):
    """Raised by the test hook ``interrupt_after``: the run stops as if killed after a save."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training interrupted after the checkpoint at step {step}")
        self.step = step


def _run_key(base: BaseModel, config: TrainConfig, data: PreferenceData) -> str:
    from rmvalues.store.manifest import stable_hash

    return stable_hash({"base": base.to_dict(), "config": config.to_dict(),
                        "data": data.provenance()["content_hash"]})


def train_reward_model(
    base: str | Path | BaseModel,
    data: str | Path | Sequence[Mapping[str, Any]] | PreferenceData,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    every: int | None = None,
    size: int | None = None,
    data_config: str | None = None,
    gguf_file: str | None = None,
    chat_template: str | None = None,
    device: str | None = None,
    resume: bool = True,
    interrupt_after: int | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train a Bradley–Terry LoRA reward model on preference ``data`` from ``base`` into ``out``.

    ``data``: hub id, JSONL/JSON/Parquet file, list of records, or a loaded :class:`PreferenceData`;
    ``every``/``size`` subsample it (every N-th pair, or a seeded random subset). Everything about
    the data is checked before training starts. With ``resume`` (default) a folder holding an
    interrupted run of the same settings continues from its last checkpoint; a folder holding a
    different run is refused. Nothing is created in ``out`` before the inputs are checked, and the
    folder is locked while the run writes it. ``interrupt_after`` stops after the first save at or
    past that step (raising :class:`TrainingInterrupted`), for testing resumption. ``callbacks``:
    more ``transformers.TrainerCallback`` objects, run after the checkpoint callback.
    """
    from rmvalues.io import output_lock
    from rmvalues.store.shards import check_writable

    config = config or TrainConfig()
    if not isinstance(base, BaseModel):
        base = BaseModel(str(base), gguf_file=gguf_file, chat_template=chat_template)
    out = check_writable(out, create=False)  # made when the first file is written
    with output_lock(out):  # one run writes a folder at a time
        return _train(base, data, out, config, every=every, size=size, data_config=data_config,
                      device=device, resume=resume, interrupt_after=interrupt_after,
                      callbacks=callbacks)


def _train(base: BaseModel, data: Any, out: Path, config: TrainConfig, *, every: int | None,
           size: int | None, data_config: str | None, device: str | None, resume: bool,
           interrupt_after: int | None, callbacks: Sequence[Any]) -> TrainResult:
    """:func:`train_reward_model` once ``out`` is checked and locked."""
    import torch

    from rmvalues.store.manifest import build_manifest, read_manifest, write_manifest
    from rmvalues.training.data import PreferenceData, load_preference_data
    from rmvalues.training.pad import apply_pad_policy

    started = time.perf_counter()

    # The data are read, checked and tokenised before the model is loaded: bad input fails fast.
    base = pin_base(base)
    tokenizer = load_base_tokenizer(base)
    if not isinstance(data, PreferenceData):
        data = load_preference_data(data, tokenizer, every=every, size=size, seed=config.seed,
                                    max_length=config.max_length, config=data_config,
                                    chat_template=base.chat_template)
    elif every is not None or size is not None:
        raise InputError("subsample when loading PreferenceData, not again at training time.")
    if len(data) < 1:
        raise InputError("no preference pairs to train on.")
    torch.manual_seed(config.seed)  # the new score head's initialisation
    model, tokenizer, _ = load_base(base, tokenizer=tokenizer)
    pad = apply_pad_policy(tokenizer, model, config.pad_token)

    key = _run_key(base, config, data)
    run_manifest = out / MANIFEST_NAME
    resume_from = None
    if run_manifest.is_file():
        previous = read_manifest(run_manifest).fields.get("run_key")
        if previous != key:
            raise InputError(
                f"{out} holds a training run with other settings, base model or data (run key "
                f"{previous} != {key}); use a new --out folder.")
        found = _resumable(out) if resume else None
        if found is not None:
            resume_from = found
        elif checkpoint_dirs(out, complete=False) and not resume:
            raise InputError(f"{out} already holds checkpoints; pass resume=True or a new folder.")
    elif checkpoint_dirs(out, complete=False):
        raise InputError(f"{out} holds checkpoints but no run manifest; use a new --out folder.")

    fields = {"run_key": key, "base": base.to_dict(), "pad": pad, "config": config.to_dict(),
              "data": data.provenance(), "chat_template": data.stats.get("template_hash")}
    write_manifest(run_manifest, build_manifest("rm-train-run", **fields, status="running"))

    from peft import get_peft_model
    from trl import RewardTrainer

    peft_model = get_peft_model(model, config.lora_config())
    # No hub look-up and no full embedding matrix in every adapter: the added pad rows are saved on
    # their own (ADDED_EMBEDDINGS) and the base is named in the manifest.
    peft_model.peft_config["default"].base_model_name_or_path = ""
    if device:
        peft_model.to(device)
    schedule = config.checkpoint_schedule()
    callback = _CheckpointCallback(out, schedule, fields, tokenizer, pad, interrupt_after)
    args = config.reward_config(out, use_cpu=device == "cpu")
    trainer = RewardTrainer(model=peft_model, args=args, train_dataset=data.to_dataset(),
                            processing_class=tokenizer,
                            callbacks=[callback.as_trainer_callback(), *callbacks])
    if trainer.processing_class.pad_token_id != pad["pad_token_id"]:
        raise ModelError("the trainer changed the pad token; report this as a bug.")
    trainer.train(resume_from_checkpoint=str(resume_from[1]) if resume_from else None)

    steps = list(checkpoint_dirs(out))
    total = int(trainer.state.max_steps)
    write_manifest(run_manifest, build_manifest(
        "rm-train-run", **fields, status="finished", total_steps=total, checkpoints=steps,
        resumed_from=resume_from[0] if resume_from else None,
        log_history=trainer.state.log_history))
    write_model_card(out, fields, step=None, total_steps=total)
    elapsed = time.perf_counter() - started
    dropped = data.stats.get("too_long_dropped", 0)
    summary = (f"trained {total} step(s) on {len(data):,} pairs in {elapsed:.1f}s"
               + (f" ({dropped} over-long pair(s) dropped)" if dropped else "")
               + (f" (resumed from step {resume_from[0]})" if resume_from else "")
               + f"; {len(steps)} checkpoints ({', '.join(map(str, steps))}) -> {out}")
    return TrainResult(out=out, steps=steps, total_steps=total,
                       resumed_from=resume_from[0] if resume_from else None, summary=summary,
                       log_history=list(trainer.state.log_history), model=trainer.model,
                       tokenizer=tokenizer)
